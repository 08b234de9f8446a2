// Tandem browser SDK: audio calls through the Tandem WebRTC-to-SIP gateway.
//
//   import { Tandem } from "/webkit/tandem.js";
//   const phone = await Tandem.connect(session);          // session: the JSON of POST /api/v1/sessions
//   phone.on("incoming", call => call.answer());
//   const call = phone.call("+4930123456");
//   call.on("state", state => ...);                        // ringing, progress, early, connected, held, ended
//
// Signalling is JSON over one WebSocket (docs/webkit-signalling.md, version 1). Tandem is
// ICE-lite and takes no trickled candidates: every offer and answer is sent once ICE
// gathering is complete, with the candidates in the SDP. Plain ES module, no dependencies;
// it also defines the <tandem-click-to-call> element (see the end of this file).

const PROTOCOL_VERSION = 1;
const ICE_GATHERING_LIMIT_MS = 2000;
const CONNECT_TIMEOUT_MS = 15000;
const QUALITY_INTERVAL_MS = 2000;
const DEFAULT_HEARTBEAT_S = 20;
const DTMF_DIGITS = /^[0-9*#A-D]{1,32}$/;

/// Errors thrown by listeners must not break the SDK's own dispatch; they are reported
/// as uncaught errors (window "error" event, the console) instead.
function reportError(error) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else setTimeout(() => { throw error; });
}

/// A minimal event emitter. `on("*", (event, detail) => ...)` receives every event.
class Emitter {
  #listeners = new Map();

  on(event, listener) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(listener);
    return this;
  }

  off(event, listener) {
    const set = this.#listeners.get(event);
    if (set) for (const l of set) if (l === listener || l.listener === listener) set.delete(l);
    return this;
  }

  once(event, listener) {
    const wrapper = (...args) => { this.off(event, wrapper); listener(...args); };
    wrapper.listener = listener;
    return this.on(event, wrapper);
  }

  emit(event, detail) {
    for (const listener of [...(this.#listeners.get(event) || [])]) {
      try { listener(detail); } catch (error) { reportError(error); }
    }
    for (const listener of [...(this.#listeners.get("*") || [])]) {
      try { listener(event, detail); } catch (error) { reportError(error); }
    }
  }
}

function newCallId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");
}

/// Resolves once the connection's ICE gathering is complete, or after `limit` ms (the
/// local description then holds the candidates found so far).
function gatheringComplete(pc, limit = ICE_GATHERING_LIMIT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise(resolve => {
    const done = () => { clearTimeout(timer); pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, limit);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/// Mean opinion score (1 … 4.5) by the simplified ITU-T G.107 E-model:
/// R = 93.2 − Id(effective latency) − Ie(packet loss), MOS = 1 + 0.035 R + 7·10⁻⁶ R (R − 60)(100 − R).
/// Effective latency = one-way delay (RTT / 2) + 2 × jitter + 10 ms of codec delay.
export function estimateMOS({ roundTripMs = 0, jitterMs = 0, lossPercent = 0 } = {}) {
  const latency = (roundTripMs || 0) / 2 + 2 * (jitterMs || 0) + 10;
  const delayImpairment = latency < 160 ? latency / 40 : (latency - 120) / 10;
  const lossImpairment = 2.5 * Math.max(0, lossPercent || 0);
  const r = 93.2 - delayImpairment - lossImpairment;
  const mos = r <= 0 ? 1 : r >= 100 ? 4.5 : 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r);
  return Math.round(Math.min(4.5, Math.max(1, mos)) * 100) / 100;
}

/// The quality figures of one getStats() report; `previous` (the last result) turns the
/// cumulative loss counters into the loss of the interval, which is what the MOS rates.
function qualityFrom(stats, previous) {
  let inbound = null, remoteInbound = null, selectedPair = null, nominatedPair = null;
  stats.forEach(s => {
    if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s;
    else if (s.type === "remote-inbound-rtp" && s.kind === "audio") remoteInbound = s;
    else if (s.type === "transport" && s.selectedCandidatePairId) selectedPair = stats.get(s.selectedCandidatePairId) || null;
    else if (s.type === "candidate-pair" && s.nominated && s.state === "succeeded") nominatedPair = s;
  });
  const pair = selectedPair || nominatedPair;
  const packetsReceived = inbound?.packetsReceived ?? 0;
  const packetsLost = Math.max(0, inbound?.packetsLost ?? 0);
  const jitterMs = inbound?.jitter != null ? inbound.jitter * 1000 : null;
  // RTCP's round trip (from Tandem's receiver reports) when there is one, else ICE's (consent checks).
  const rttSeconds = remoteInbound?.roundTripTime ?? pair?.currentRoundTripTime ?? null;
  const roundTripMs = rttSeconds != null ? rttSeconds * 1000 : null;
  const lost = packetsLost - (previous?.packetsLost ?? 0);
  const received = packetsReceived - (previous?.packetsReceived ?? 0);
  const lossPercent = lost > 0 && lost + received > 0 ? 100 * lost / (lost + received) : 0;
  return {
    jitterMs, packetsLost, packetsReceived, roundTripMs,
    lossPercent: Math.round(lossPercent * 100) / 100,
    mos: estimateMOS({ roundTripMs, jitterMs, lossPercent }),
    time: Date.now(),
  };
}

/// One call, outgoing (`phone.call`) or incoming (the phone's "incoming" event).
///
/// Events: "state" (state), "progress" ({code, early}), "answered", "held" ({local, remote}),
/// "dtmf" ({digit}), "quality" ({jitterMs, packetsLost, packetsReceived, roundTripMs,
/// lossPercent, mos, time}, every 2 s once answered), "track" (the remote MediaStreamTrack,
/// when it is added to `remoteStream`), "ended" ({code, reason}).
export class Call extends Emitter {
  #link;            // the phone's side: send(message), options, iceServers, forget(call)
  #offer = null;    // Tandem's offer of an incoming call
  #localStream = null;
  #ownsStream = false;
  #signalled = false; // Tandem knows the call: the `call` was sent, or it came as `incoming`
  #answering = false;
  #quality = null;
  #qualityTimer = null;

  constructor(link, { id, direction, remote, display = null, offer = null }) {
    super();
    this.#link = link;
    this.id = id;
    this.direction = direction;    // "outgoing" | "incoming"
    this.remote = remote ?? null;  // the number called, or the caller's
    this.display = display;        // the caller's display name (incoming), if any
    // An outgoing call is "progress" until Tandem reports ringing or early media.
    this.state = direction === "incoming" ? "ringing" : "progress";
    this.remoteStream = new MediaStream();
    this.pc = null;
    this.#offer = offer;
    this.#signalled = direction === "incoming";
  }

  /// Whether the call is past the answer (connected or on hold).
  get established() { return this.state === "connected" || this.state === "held"; }

  // ----- outgoing -----

  /// Starts an outgoing call; called by `Phone.call`.
  async _place(to) {
    try {
      const track = await this.#acquireTrack();
      if (this.state === "ended") return;
      const pc = this.#createPeerConnection();
      pc.addTransceiver(track, { direction: "sendrecv", streams: [this.#localStream] });
      await pc.setLocalDescription(await pc.createOffer());
      await gatheringComplete(pc);
      if (this.state === "ended") return; // hung up while gathering: Tandem never heard of it
      const message = { type: "call", call: this.id, sdp: pc.localDescription.sdp };
      if (to != null && to !== "") message.to = String(to);
      this.#signalled = this.#link.send(message);
      if (!this.#signalled) this.#fail("disconnected", new Error("not connected to Tandem"));
    } catch (error) {
      this.#fail("media", error);
    }
  }

  // ----- incoming -----

  /// Answers an incoming call with the local microphone (or the phone's `stream` option).
  /// Resolves once the answer is sent; `answered` and the "connected" state follow from Tandem.
  async answer() {
    if (this.direction !== "incoming") throw new Error("only an incoming call can be answered");
    if (this.state === "ended") throw new Error("the call has ended");
    if (this.#answering) return;
    this.#answering = true;
    try {
      const track = await this.#acquireTrack();
      if (this.state === "ended") return;
      const pc = this.#createPeerConnection();
      await pc.setRemoteDescription({ type: "offer", sdp: this.#offer });
      // The offer created the audio transceiver (recvonly so far): send on it too.
      const transceiver = pc.getTransceivers()[0];
      if (!transceiver) throw new Error("Tandem's offer has no audio");
      await transceiver.sender.replaceTrack(track);
      transceiver.sender.setStreams?.(this.#localStream);
      transceiver.direction = "sendrecv";
      await pc.setLocalDescription(await pc.createAnswer());
      await gatheringComplete(pc);
      if (this.state === "ended") return; // rejected or ended meanwhile
      if (!this.#link.send({ type: "answer", call: this.id, sdp: pc.localDescription.sdp })) {
        throw new Error("not connected to Tandem");
      }
    } catch (error) {
      this.#fail("media", error);
      throw error;
    }
  }

  // ----- both -----

  /// Ends the call; an incoming call not answered yet is rejected (with `code`, 486 by default).
  hangup(code) {
    if (this.state === "ended") return;
    const rejecting = this.direction === "incoming" && !this.#answering;
    if (this.#signalled) {
      const message = { type: "hangup", call: this.id };
      if (code != null) message.code = code;
      this.#link.send(message);
    }
    this._end(code ?? (rejecting ? 486 : null), rejecting ? "rejected" : "hangup");
  }

  /// Sends DTMF: as RFC 4733 events in the media (RTCDTMFSender) when the connection
  /// negotiated telephone-event, else asks Tandem to send it. Returns "rtp" or "message".
  sendDTMF(digits) {
    const tones = String(digits).toUpperCase();
    if (!DTMF_DIGITS.test(tones)) throw new RangeError("DTMF digits are 1 to 32 of 0-9 * # A-D");
    if (this.state === "ended") throw new Error("the call has ended");
    const dtmf = this.pc?.getSenders()[0]?.dtmf;
    if (dtmf?.canInsertDTMF) {
      // insertDTMF replaces the tones still queued: append to them so quick key presses all go out.
      dtmf.insertDTMF(dtmf.toneBuffer + tones, 100, 70);
      return "rtp";
    }
    this.#link.send({ type: "dtmf", call: this.id, digits: tones });
    return "message";
  }

  /// Puts the call on hold (Tandem re-INVITEs with a=sendonly) and mutes the microphone.
  /// The "held" event and state follow from Tandem.
  hold() { this.#setHold(true); }

  /// Takes the call off hold and unmutes the microphone.
  resume() { this.#setHold(false); }

  #setHold(hold) {
    if (!this.established) throw new Error("the call is not connected");
    const track = this.#localStream?.getAudioTracks()[0];
    if (track) track.enabled = !hold;
    this.#link.send({ type: hold ? "hold" : "resume", call: this.id });
  }

  /// Restarts ICE (e.g. after a network change): a new offer sent as `renegotiate`.
  async renegotiate() {
    if (!this.pc || this.state === "ended") throw new Error("the call has no connection");
    await this.pc.setLocalDescription(await this.pc.createOffer({ iceRestart: true }));
    await gatheringComplete(this.pc);
    this.#link.send({ type: "renegotiate", call: this.id, sdp: this.pc.localDescription.sdp });
  }

  /// The latest quality figures (see the "quality" event), or null before the first.
  stats() { return this.#quality; }

  // ----- from the phone (Tandem's messages) -----

  async _onAnswer(sdp) {
    if (!this.pc || this.pc.signalingState !== "have-local-offer") return;
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp });
    } catch (error) {
      this.#fail("bad-sdp", error);
    }
  }

  _onProgress({ code = null, early = false }) {
    if (this.state === "ended") return;
    if (!this.established) this.#setState(early ? "early" : code === 180 ? "ringing" : "progress");
    this.emit("progress", { code, early: !!early });
  }

  _onAnswered() {
    if (this.state === "ended" || this.established) return;
    this.#setState("connected");
    this.emit("answered");
    this.#startQuality();
  }

  _onHeld({ local = false, remote = false }) {
    if (!this.established) return;
    this.#setState(local || remote ? "held" : "connected");
    this.emit("held", { local: !!local, remote: !!remote });
  }

  _onDTMF(digit) {
    if (this.state !== "ended") this.emit("dtmf", { digit });
  }

  /// Ends the call locally: closes the connection, releases the microphone, emits "ended".
  _end(code, reason) {
    if (this.state === "ended") return;
    clearInterval(this.#qualityTimer);
    this.#qualityTimer = null;
    try { this.pc?.close(); } catch { /* already closed */ }
    if (this.#ownsStream) this.#localStream?.getTracks().forEach(t => t.stop());
    this.#link.forget(this);
    this.#setState("ended");
    this.emit("ended", { code: code ?? null, reason: reason ?? "" });
  }

  // ----- internals -----

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  /// A setup failure: reported as the phone's "error", the call hung up (if Tandem knows it) and ended.
  #fail(code, error) {
    if (this.state === "ended") return;
    const message = error?.message || String(error);
    this.#link.error({ code, message, call: this.id });
    if (this.#signalled) this.#link.send({ type: "hangup", call: this.id });
    this._end(null, message);
  }

  async #acquireTrack() {
    const given = this.#link.options.stream;
    if (given) {
      this.#localStream = given;
      this.#ownsStream = false;
    } else {
      this.#localStream = await navigator.mediaDevices.getUserMedia({ audio: this.#link.options.audio ?? true, video: false });
      this.#ownsStream = true;
      if (this.state === "ended") this.#localStream.getTracks().forEach(t => t.stop());
    }
    const track = this.#localStream.getAudioTracks()[0];
    if (!track) throw new Error("the local stream has no audio track");
    return track;
  }

  #createPeerConnection() {
    const pc = new RTCPeerConnection({
      iceServers: this.#link.iceServers,
      iceTransportPolicy: this.#link.options.iceTransportPolicy || "all",
      bundlePolicy: "max-bundle",
    });
    pc.addEventListener("track", event => {
      if (!this.remoteStream.getTracks().includes(event.track)) this.remoteStream.addTrack(event.track);
      this.emit("track", event.track);
    });
    this.pc = pc;
    return pc;
  }

  #startQuality() {
    if (this.#qualityTimer) return;
    this.#qualityTimer = setInterval(async () => {
      if (!this.pc || this.state === "ended") return;
      try {
        const quality = qualityFrom(await this.pc.getStats(), this.#quality);
        if (this.state === "ended") return;
        this.#quality = quality;
        this.emit("quality", quality);
      } catch { /* the connection closed meanwhile */ }
    }, QUALITY_INTERVAL_MS);
  }
}

/// A connection to Tandem for one session (`Tandem.connect`).
///
/// Events: "registration" ({state, reason}), "call" (every new Call, either direction),
/// "incoming" (an incoming Call), "error" ({code, message, call: call id or null}),
/// "disconnected" ({code, reason}).
export class Phone extends Emitter {
  #socket = null;
  #options;
  #heartbeat = null;
  #link;

  constructor(session, options = {}) {
    super();
    this.session = session;
    this.#options = options;
    this.id = session.id ?? null;
    this.extension = session.extension ?? null;
    this.guest = !!session.guest;
    this.registration = null;   // the last registration state, null before any
    this.calls = new Map();     // id → Call, the calls not ended
    this.connected = false;
    this.heartbeat = DEFAULT_HEARTBEAT_S;
    this.signallingRoundTripMs = null; // from the last ping/pong
    this.#link = {
      send: message => this.#send(message),
      error: detail => this.emit("error", detail),
      forget: call => { if (this.calls.get(call.id) === call) this.calls.delete(call.id); },
      options: this.#options,
      iceServers: session.iceServers || [],
    };
  }

  /// Opens the WebSocket; resolves with the phone after Tandem's `welcome`.
  _open() {
    const { websocketURL, token } = this.session;
    const url = websocketURL + (websocketURL.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
    return new Promise((resolve, reject) => {
      let welcomed = false;
      let refusal = null; // an `error` frame received before `welcome`
      const socket = new WebSocket(url);
      this.#socket = socket;
      const timer = setTimeout(() => {
        if (welcomed) return;
        reject(new Error("Tandem did not welcome the session within " + CONNECT_TIMEOUT_MS / 1000 + " s"));
        socket.close();
      }, CONNECT_TIMEOUT_MS);
      socket.addEventListener("message", event => {
        let message;
        try { message = JSON.parse(event.data); } catch { return; }
        if (!message || typeof message !== "object") return;
        if (welcomed) { this.#receive(message); return; }
        if (message.type === "welcome") {
          welcomed = true;
          clearTimeout(timer);
          this.#welcome(message);
          resolve(this);
        } else if (message.type === "error") {
          refusal = message;
        }
      });
      socket.addEventListener("close", event => {
        clearTimeout(timer);
        if (!welcomed) {
          // A bad, deleted or expired token gets HTTP 401 before the upgrade: the browser
          // only sees the socket fail (code 1006), without the status.
          const why = refusal ? `${refusal.code}: ${refusal.message}` : `WebSocket closed with code ${event.code} before welcome`;
          reject(new Error(`Tandem refused the session (${why})`));
          return;
        }
        this.#closed(event);
      });
    });
  }

  /// Places a call to `number` (for a guest session, its service key or nothing: the
  /// destination is fixed by Tandem). Returns the Call at once; its events tell the rest.
  call(number) {
    if (!this.connected) throw new Error("not connected to Tandem");
    const call = new Call(this.#link, { id: newCallId(), direction: "outgoing", remote: number ?? null });
    this.calls.set(call.id, call);
    this.emit("call", call);
    call._place(number);
    return call;
  }

  /// Hangs up every call and closes the connection ("disconnected" follows).
  close() {
    for (const call of [...this.calls.values()]) call.hangup();
    if (this.#socket && this.#socket.readyState <= WebSocket.OPEN) this.#socket.close(1000, "closed by the page");
  }

  #welcome(message) {
    this.connected = true;
    this.version = message.version ?? PROTOCOL_VERSION;
    if (message.session != null) this.id = message.session;
    if ("extension" in message) this.extension = message.extension ?? null;
    if ("guest" in message) this.guest = !!message.guest;
    const seconds = Number(message.heartbeat) > 0 ? Number(message.heartbeat) : DEFAULT_HEARTBEAT_S;
    this.heartbeat = seconds;
    this.#heartbeat = setInterval(() => this.#send({ type: "ping", time: Date.now() }), seconds * 1000);
  }

  #send(message) {
    if (!this.#socket || this.#socket.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(JSON.stringify(message));
    return true;
  }

  #receive(message) {
    const call = typeof message.call === "string" ? this.calls.get(message.call) : undefined;
    switch (message.type) {
      case "registration":
        this.registration = message.state;
        this.emit("registration", { state: message.state, reason: message.reason ?? null });
        break;
      case "incoming": {
        if (typeof message.call !== "string" || this.calls.has(message.call)) break;
        const incoming = new Call(this.#link, {
          id: message.call, direction: "incoming", remote: message.from ?? null,
          display: message.display ?? null, offer: message.sdp,
        });
        this.calls.set(incoming.id, incoming);
        this.emit("call", incoming);
        this.emit("incoming", incoming);
        break;
      }
      case "answer": call?._onAnswer(message.sdp); break;
      case "progress": call?._onProgress(message); break;
      case "answered": call?._onAnswered(); break;
      case "held": call?._onHeld(message); break;
      case "dtmf": call?._onDTMF(message.digit); break;
      case "ended": call?._end(message.code ?? null, message.reason ?? ""); break;
      case "pong":
        if (typeof message.time === "number") this.signallingRoundTripMs = Date.now() - message.time;
        break;
      case "error": {
        const detail = { code: message.code ?? null, message: message.message ?? "", call: message.call ?? null };
        // A refused call (busy, not-allowed, bad-sdp, …) is over; a refused request on an
        // established call (a hold Tandem cannot do now, say) leaves the call as it is.
        const aboutTheCall = detail.code !== "bad-message" && detail.code !== "unknown-type";
        if (call && !call.established && aboutTheCall) call._end(null, detail.message || detail.code);
        this.emit("error", detail);
        break;
      }
      default: break; // welcome again or a newer type: ignored
    }
  }

  #closed(event) {
    this.connected = false;
    clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    for (const call of [...this.calls.values()]) call._end(null, "disconnected");
    this.emit("disconnected", { code: event.code, reason: event.reason || "" });
  }
}

/// Which frequency dominates `stream`'s audio: an AnalyserNode (FFT of 8192) sampled every
/// 100 ms for `seconds` after skipping the first `skip` seconds, power spectra averaged.
/// Resolves to {peakHz, peakShare (power within ±40 Hz of the peak / all), frames}.
export async function measureTone(stream, seconds = 3, { skip = 0.5 } = {}) {
  const context = new AudioContext();
  // Chromium hands a remote WebRTC track to WebAudio only while a media element plays it.
  const sink = new Audio();
  sink.muted = true;
  sink.srcObject = stream;
  sink.play().catch(() => {});
  let source = null;
  try {
    await context.resume();
    const analyser = context.createAnalyser();
    analyser.fftSize = 8192;
    source = context.createMediaStreamSource(stream);
    source.connect(analyser);
    const sleep = ms => new Promise(r => setTimeout(r, ms));
    await sleep(skip * 1000);
    const bins = new Float32Array(analyser.frequencyBinCount);
    const sum = new Float64Array(analyser.frequencyBinCount);
    const deadline = performance.now() + seconds * 1000;
    let frames = 0;
    while (performance.now() < deadline) {
      analyser.getFloatFrequencyData(bins);
      for (let i = 0; i < bins.length; i++) sum[i] += Math.pow(10, bins[i] / 10);
      frames++;
      await sleep(100);
    }
    const binHz = context.sampleRate / analyser.fftSize;
    let peak = 1;
    for (let i = 2; i < sum.length; i++) if (sum[i] > sum[peak]) peak = i;
    const peakHz = peak * binHz;
    let total = 0, near = 0;
    for (let i = 2; i < sum.length; i++) { total += sum[i]; if (Math.abs(i * binHz - peakHz) <= 40) near += sum[i]; }
    return { peakHz, peakShare: total > 0 ? near / total : 0, frames };
  } finally {
    source?.disconnect();
    sink.srcObject = null;
    await context.close();
  }
}

export const Tandem = {
  version: PROTOCOL_VERSION,

  /// Connects with a session (the JSON of POST /api/v1/sessions). Options:
  ///   iceTransportPolicy: "all" (default) | "relay"
  ///   audio: getUserMedia's audio constraints (default true)
  ///   stream: a MediaStream to send instead of the microphone (not stopped by the SDK)
  async connect(session, options = {}) {
    if (!session || typeof session.websocketURL !== "string" || typeof session.token !== "string") {
      throw new TypeError("a session needs websocketURL and token");
    }
    return new Phone(session, options)._open();
  },

  measureTone,
  estimateMOS,
};

export default Tandem;

// ----- <tandem-click-to-call session-url="…" service="…" label="…" [hide-number]> -----
//
// A button that calls a service from the browser as a guest: on click it POSTs
// {"service", "from"} as JSON to session-url (the application server, which asks Tandem for
// a guest session), connects and calls the service. Properties: `phone`, `call`, `state`,
// `sessionProvider` (async ({service, from}) => session, instead of the POST),
// `connectOptions` (Tandem.connect's options), start(from?), hangup(). DOM events:
// "tandem-call" ({detail: {call, phone}}) when the call exists, "tandem-state"
// ({detail: {state, code, reason}}) for "connecting", each call state and "failed".

const STATUS_TEXT = {
  idle: "", connecting: "Connecting…", progress: "Calling…", ringing: "Ringing…", early: "Ringing…",
  connected: "Connected", held: "On hold", ended: "Call ended", failed: "Could not call",
};

function clickToCallStyles() {
  // Constructed stylesheets are not inline styles: CSP's style-src 'self' lets them through.
  try {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(`
      :host { display: inline-block; font: inherit; }
      form { display: flex; gap: .5em; flex-wrap: wrap; align-items: center; margin: 0; }
      input { font: inherit; padding: .4em .6em; }
      button { font: inherit; padding: .4em 1.2em; cursor: pointer; }
      [part=status] { min-height: 1.4em; margin-top: .3em; }
    `);
    return [sheet];
  } catch {
    return [];
  }
}

const ElementBase = globalThis.HTMLElement ?? class {};

export class TandemClickToCall extends ElementBase {
  static observedAttributes = ["label", "hide-number"];

  #number; #button; #status; #audio;
  #attempt = 0; // bumped by hangup() so a start() still connecting gives up

  constructor() {
    super();
    this.phone = null;
    this.call = null;
    this.state = "idle";
    this.sessionProvider = null;
    this.connectOptions = {};
    const root = this.attachShadow({ mode: "open" });
    root.adoptedStyleSheets = clickToCallStyles();
    const form = document.createElement("form");
    form.setAttribute("part", "form");
    this.#number = document.createElement("input");
    Object.assign(this.#number, { type: "tel", placeholder: "Your number (optional)", autocomplete: "tel" });
    this.#number.setAttribute("part", "number");
    this.#number.setAttribute("aria-label", "Your phone number (optional)");
    this.#button = document.createElement("button");
    this.#button.type = "submit";
    this.#button.setAttribute("part", "button");
    this.#status = document.createElement("div");
    this.#status.setAttribute("part", "status");
    this.#status.setAttribute("role", "status");
    this.#audio = document.createElement("audio");
    this.#audio.autoplay = true;
    form.append(this.#number, this.#button);
    root.append(form, this.#status, this.#audio);
    form.addEventListener("submit", event => {
      event.preventDefault();
      if (this.#active) this.hangup();
      else this.start().catch(() => {}); // failures show in the status line and as "tandem-state"
    });
    this.#render();
  }

  attributeChangedCallback() { this.#render(); }

  disconnectedCallback() {
    // Removed from the page: no call goes on without its button. (A move re-adds it at once.)
    queueMicrotask(() => { if (!this.isConnected) this.hangup(); });
  }

  get #active() { return !["idle", "ended", "failed"].includes(this.state); }

  /// Places the call; resolves with the Call (rejects if no session or connection).
  async start(from = this.#number.value.trim()) {
    if (this.#active) return this.call;
    const attempt = ++this.#attempt;
    const service = this.getAttribute("service") || "";
    this.call = null;
    this.#setState("connecting");
    let phone = null;
    try {
      const session = this.sessionProvider
        ? await this.sessionProvider({ service, from: from || null })
        : await this.#requestSession(service, from || null);
      if (attempt !== this.#attempt) throw new Error("cancelled");
      phone = await Tandem.connect(session, this.connectOptions);
      if (attempt !== this.#attempt) { phone.close(); throw new Error("cancelled"); }
    } catch (error) {
      if (attempt === this.#attempt) this.#setState("failed", null, error.message);
      throw error;
    }
    this.phone = phone;
    const call = phone.call(service || undefined);
    this.call = call;
    this.#audio.srcObject = call.remoteStream;
    call.on("track", () => { this.#audio.srcObject = call.remoteStream; });
    call.on("state", state => { if (state !== "ended") this.#setState(state); });
    call.on("ended", ({ code, reason }) => {
      this.#setState("ended", code, reason);
      phone.close(); // one guest session, one call
    });
    this.dispatchEvent(new CustomEvent("tandem-call", { detail: { call, phone } }));
    this.#setState(call.state);
    return call;
  }

  /// Hangs up (or gives up connecting).
  hangup() {
    this.#attempt++;
    if (this.call && this.call.state !== "ended") this.call.hangup();
    else if (this.state === "connecting") this.#setState("ended", null, "cancelled");
  }

  async #requestSession(service, from) {
    const url = this.getAttribute("session-url");
    if (!url) throw new Error("no session-url");
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ service, from }),
    });
    if (!response.ok) throw new Error(`session refused: HTTP ${response.status}`);
    return response.json();
  }

  #setState(state, code = null, reason = null) {
    this.state = state;
    this.#render(reason);
    this.dispatchEvent(new CustomEvent("tandem-state", { detail: { state, code, reason } }));
  }

  #render(reason = null) {
    this.#button.textContent = this.#active ? "Hang up" : (this.getAttribute("label") || "Call us");
    this.#number.hidden = this.hasAttribute("hide-number");
    this.#number.disabled = this.#active;
    const text = STATUS_TEXT[this.state] ?? this.state;
    this.#status.textContent = reason && (this.state === "ended" || this.state === "failed") ? `${text}: ${reason}` : text;
  }
}

if (globalThis.customElements && !customElements.get("tandem-click-to-call")) {
  customElements.define("tandem-click-to-call", TandemClickToCall);
}
