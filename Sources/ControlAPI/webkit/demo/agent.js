// Tandem's agent demo: an extension's phone in the browser, on the SDK (../tandem.js).
//
// The session comes from `#session=<encodeURIComponent(JSON)>` (tests), else from a POST to
// the demo session endpoint beside this page. window.tandemAgent is the test hook:
//   ready                  Promise of the phone once connected
//   events                 [{t, event, call, detail}], every phone and call event
//   autoAnswer             answer incoming calls at once (default: ?autoanswer=1)
//   call(number)           Promise of the new call's id
//   measure(seconds, id?)  Promise of {peakHz, peakShare, frames} of the call's received audio
//   dtmf(digits), hold(), resume(), hangup()   on the current call
//   current()              {id, state, direction, remote} of the current call, or null
//   quality()              the current call's latest quality figures, or null
import { Tandem, Call } from "../tandem.js";

const $ = id => document.getElementById(id);
const query = new URLSearchParams(location.search);

// The fake microphone of the tests must arrive unprocessed; a person may prefer the defaults,
// but this page is a demo of the gateway, not of the browser's echo canceller.
const AUDIO = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };

const events = [];
const known = new Map(); // every call seen, ended ones too, for measure(…, id)
let phone = null;
let current = null;      // the newest call; stays (ended) until another one comes
let autoAnswer = query.get("autoanswer") === "1";

// ----- event log -----

/// A JSON-friendly copy of an event's detail (no Call or MediaStreamTrack objects).
function plain(event, detail) {
  if (detail == null) return {};
  if (event === "state") return { state: detail };
  if (event === "incoming" || event === "call") return { direction: detail.direction, remote: detail.remote, display: detail.display };
  if (event === "track") return { kind: detail.kind };
  return { ...detail };
}

function record(event, callId, detail) {
  const entry = { t: performance.now(), event, call: callId ?? null, detail: plain(event, detail) };
  events.push(entry);
  if (event !== "quality") log(`${event}${callId ? " [" + callId.slice(0, 8) + "]" : ""} ${JSON.stringify(entry.detail)}`);
}

function log(line) {
  const pre = $("log");
  const lines = (pre.textContent ? pre.textContent.split("\n") : []).concat(new Date().toLocaleTimeString() + " " + line);
  pre.textContent = lines.slice(-40).join("\n");
}

// ----- session and connection -----

async function loadSession() {
  const marker = "#session=";
  if (location.hash.startsWith(marker)) {
    const session = JSON.parse(decodeURIComponent(location.hash.slice(marker.length)));
    // Keep the token out of the address bar and the history.
    history.replaceState(null, "", location.pathname + location.search);
    return session;
  }
  const response = await fetch(new URL("session", location.href), {
    method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
  });
  if (response.status === 404) throw new Error("demo session endpoint is off: pass #session=…");
  if (!response.ok) throw new Error(`demo session endpoint answered HTTP ${response.status}`);
  return response.json();
}

function watch(call) {
  known.set(call.id, call);
  current = call;
  call.on("*", (event, detail) => {
    record(event, call.id, detail);
    if (event === "track" && call === current) $("remote").srcObject = call.remoteStream;
    if (event === "quality" && call === current) $("call-quality").textContent = `MOS ${detail.mos}`;
    if (event === "ended" && call === current) {
      // Another call still going becomes the current one.
      const live = [...phone.calls.values()].pop();
      if (live) current = live;
    }
    render();
  });
  $("remote").srcObject = call.remoteStream;
  render();
}

const ready = (async () => {
  const session = await loadSession();
  // ?relay=1: media only through the session's TURN servers (iceTransportPolicy "relay").
  const connected = await Tandem.connect(session, { audio: AUDIO, iceTransportPolicy: query.get("relay") === "1" ? "relay" : "all" });
  phone = connected;
  phone.on("*", (event, detail) => {
    if (event === "call") watch(detail); // before any of the call's own events
    record(event, detail instanceof Call ? detail.id : detail?.call ?? null, detail);
    if (event === "registration") $("registration").textContent = detail.state + (detail.reason ? ` (${detail.reason})` : "");
    if (event === "disconnected") $("registration").textContent = "disconnected";
    render();
  });
  phone.on("incoming", call => {
    if (autoAnswer) call.answer().catch(() => {}); // a failure is logged as "error" and "ended"
  });
  $("identity").textContent = phone.guest ? "(guest session)" : `(extension ${phone.extension})`;
  if (phone.guest) $("registration").textContent = "guest: no registration";
  else if (phone.registration == null) $("registration").textContent = "registering…";
  $("call").disabled = false;
  record("connected", null, { extension: phone.extension, guest: phone.guest });
  return phone;
})();
ready.catch(error => {
  $("registration").textContent = error.message;
  record("connect-error", null, { message: error.message });
});

// ----- UI -----

function render() {
  const call = current && current.state !== "ended" ? current : null;
  const ringing = call && call.direction === "incoming" && call.state === "ringing";
  $("incoming").hidden = !ringing;
  $("incall").hidden = !call || ringing;
  if (ringing) $("incoming-from").textContent = call.display ? `${call.display} <${call.remote}>` : (call.remote ?? "unknown");
  if (call) {
    $("call-remote").textContent = call.remote ?? "";
    $("call-state").textContent = call.state;
    $("hold").disabled = call.state !== "connected";
    $("resume").disabled = call.state !== "held";
  }
}

function currentCall() {
  if (!current) throw new Error("no call");
  return current;
}

$("dial").addEventListener("submit", event => {
  event.preventDefault();
  const number = $("number").value.trim();
  if (number && phone) phone.call(number);
});
$("autoanswer").checked = autoAnswer;
$("autoanswer").addEventListener("change", () => { autoAnswer = $("autoanswer").checked; });
$("accept").addEventListener("click", () => current?.answer().catch(() => {}));
$("reject").addEventListener("click", () => current?.hangup());
$("hangup").addEventListener("click", () => current?.hangup());
$("hold").addEventListener("click", () => current?.hold());
$("resume").addEventListener("click", () => current?.resume());
$("keypad").addEventListener("click", event => {
  const digit = event.target.dataset?.digit;
  if (digit && current && current.state !== "ended") current.sendDTMF(digit);
});

// ----- test hook -----

/// Waits (up to 10 s) for the call's remote track, then measures its tone.
async function measure(seconds = 3, callId) {
  const call = callId ? known.get(callId) : current;
  if (!call) throw new Error(callId ? `unknown call ${callId}` : "no call");
  if (call.remoteStream.getAudioTracks().length === 0) {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no remote audio track")), 10000);
      call.once("track", () => { clearTimeout(timer); resolve(); });
    });
  }
  return Tandem.measureTone(call.remoteStream, seconds);
}

window.tandemAgent = {
  ready,
  events,
  get autoAnswer() { return autoAnswer; },
  set autoAnswer(value) { autoAnswer = !!value; $("autoanswer").checked = autoAnswer; },
  async call(number) {
    await ready;
    return phone.call(number).id;
  },
  measure,
  dtmf: digits => currentCall().sendDTMF(digits),
  hold: () => currentCall().hold(),
  resume: () => currentCall().resume(),
  hangup: () => currentCall().hangup(),
  current: () => current && { id: current.id, state: current.state, direction: current.direction, remote: current.remote },
  quality: () => current?.stats() ?? null,
};
