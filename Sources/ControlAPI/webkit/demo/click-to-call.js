// Tandem's click-to-contact demo: a <tandem-click-to-call> button calling a service as a guest.
//
// The service comes from ?service= (default "support"); the session from a POST to the
// demo guest-session endpoint, or from `#session=<encodeURIComponent(JSON)>` (tests).
// window.tandemClickToCall is the element itself, with two test additions:
//   events            [{t, event, call, detail}]: "tandem-state" and every phone and call event
//   measure(seconds)  Promise of {peakHz, peakShare, frames} of the call's received audio
// and the element's own start(from?) → Promise of the Call, hangup(), state, phone, call.
import { Tandem, Call } from "../tandem.js";

const widget = document.getElementById("widget");
const service = new URLSearchParams(location.search).get("service") || "support";
widget.setAttribute("service", service);
document.getElementById("service-name").textContent = service;
// The tests' fake microphone must arrive unprocessed.
widget.connectOptions = { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } };

const marker = "#session=";
if (location.hash.startsWith(marker)) {
  const session = JSON.parse(decodeURIComponent(location.hash.slice(marker.length)));
  history.replaceState(null, "", location.pathname + location.search); // the token stays out of the history
  widget.sessionProvider = async () => session;
}

const events = [];

function plain(event, detail) {
  if (detail == null) return {};
  if (event === "state") return { state: detail };
  if (detail instanceof Call) return { direction: detail.direction, remote: detail.remote };
  if (event === "track") return { kind: detail.kind };
  return { ...detail };
}

function record(event, callId, detail) {
  const entry = { t: performance.now(), event, call: callId ?? null, detail: plain(event, detail) };
  events.push(entry);
  if (event === "quality") return;
  const pre = document.getElementById("log");
  const lines = (pre.textContent ? pre.textContent.split("\n") : []).concat(`${event} ${JSON.stringify(entry.detail)}`);
  pre.textContent = lines.slice(-30).join("\n");
}

widget.addEventListener("tandem-state", event => record("tandem-state", widget.call?.id, event.detail));
widget.addEventListener("tandem-call", event => {
  const { call, phone } = event.detail;
  phone.on("*", (name, detail) => { if (name !== "call") record(name, detail?.call ?? null, detail); });
  call.on("*", (name, detail) => record(name, call.id, detail));
});

/// Waits (up to 10 s) for the call's remote track, then measures its tone.
widget.measure = async (seconds = 3) => {
  const call = widget.call;
  if (!call) throw new Error("no call");
  if (call.remoteStream.getAudioTracks().length === 0) {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no remote audio track")), 10000);
      call.once("track", () => { clearTimeout(timer); resolve(); });
    });
  }
  return Tandem.measureTone(call.remoteStream, seconds);
};
widget.events = events;
window.tandemClickToCall = widget;
