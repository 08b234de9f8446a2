import Foundation
import Hummingbird
import NIOCore

/// `POST /webkit/echo` (an SDP offer in, the answer out: a call to the echo service) and
/// `GET /webkit/echo.html` + `echo.js`, a page that calls it from the browser's microphone
/// and measures what comes back. The control API of a later issue replaces this entry.
enum EchoRoutes {
    static let maximumOfferBytes = 65_536

    static func add(to router: Router<HTTPSRequestContext>, answer: @escaping ControlAPI.EchoAnswerer) {
        router.post("webkit/echo") { request, context in
            let contentType = request.headers[.contentType]?.lowercased() ?? ""
            guard contentType.hasPrefix("application/sdp") else {
                return text(.unsupportedMediaType, "send the offer as application/sdp\n")
            }
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maximumOfferBytes)
            } catch {
                return text(.contentTooLarge, "offer larger than \(maximumOfferBytes) bytes\n")
            }
            do {
                let sdp = try await answer(String(buffer: body))
                return Response(status: .created, headers: [.contentType: "application/sdp"], body: .init(byteBuffer: ByteBuffer(string: sdp)))
            } catch {
                return text(.badRequest, "\(error)\n")
            }
        }
        router.get("webkit/echo.html") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .contentSecurityPolicy: pagePolicy],
                     body: .init(byteBuffer: ByteBuffer(string: EchoPage.html)))
        }
        router.get("webkit/echo.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8", .contentSecurityPolicy: pagePolicy],
                     body: .init(byteBuffer: ByteBuffer(string: EchoPage.script)))
        }
    }

    /// Own script only, same-origin requests, media from the page's own streams.
    static let pagePolicy = "default-src 'none'; script-src 'self'; connect-src 'self'; media-src 'self' blob: mediastream:; style-src 'self'; frame-ancestors 'none'"

    static func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: message)))
    }
}

/// The echo test page: plain HTML and an ES module, no build step.
enum EchoPage {
    static let html = """
    <!doctype html>
    <html lang="en">
    <head><meta charset="utf-8"><title>Tandem echo test</title></head>
    <body>
    <h1>Tandem echo test</h1>
    <p>Speak: what you hear comes back through the gateway (Opus → G.711 → Opus, or G.711 pass-through).</p>
    <p><button id="start">Start</button> <select id="codec"><option value="opus">Opus (transcoded)</option><option value="pcmu">PCMU (pass-through)</option></select></p>
    <pre id="status">idle</pre>
    <audio id="remote" autoplay></audio>
    <script type="module" src="echo.js"></script>
    </body>
    </html>
    """

    static let script = #"""
    // Calls Tandem's echo service and measures the returned audio.
    // window.tandemEcho.run({codec: "opus"|"pcmu", seconds}) resolves to a report.
    const status = (s) => { document.getElementById("status").textContent = s; };

    async function run({ codec = "opus", seconds = 4, toneHz = 1000 } = {}) {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
      const pc = new RTCPeerConnection();
      const transceiver = pc.addTransceiver(stream.getAudioTracks()[0], { direction: "sendrecv", streams: [stream] });
      const want = codec === "pcmu" ? "audio/PCMU" : "audio/opus";
      const codecs = RTCRtpReceiver.getCapabilities("audio").codecs.filter(c => c.mimeType === want || c.mimeType === "audio/telephone-event");
      transceiver.setCodecPreferences(codecs);
      const remote = new Promise(resolve => { pc.ontrack = e => resolve(e.streams[0] || new MediaStream([e.track])); });
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise(r => { if (pc.iceGatheringState === "complete") r(); else pc.onicegatheringstatechange = () => pc.iceGatheringState === "complete" && r(); setTimeout(r, 2000); });
      status("offer sent");
      const started = performance.now();
      const response = await fetch("echo", { method: "POST", headers: { "Content-Type": "application/sdp" }, body: pc.localDescription.sdp });
      if (!response.ok) throw new Error("echo refused: " + response.status + " " + await response.text());
      await pc.setRemoteDescription({ type: "answer", sdp: await response.text() });
      const connected = await new Promise((resolve) => {
        const check = () => { if (pc.connectionState === "connected") resolve(performance.now() - started); else if (pc.connectionState === "failed") resolve(-1); };
        pc.onconnectionstatechange = check; check(); setTimeout(() => resolve(-1), 10000);
      });
      if (connected < 0) throw new Error("not connected: " + pc.connectionState);
      const incoming = await remote;
      const audio = document.getElementById("remote");
      audio.srcObject = incoming;
      audio.muted = true;
      const context = new AudioContext();
      const analyser = context.createAnalyser();
      analyser.fftSize = 8192;
      context.createMediaStreamSource(incoming).connect(analyser);
      const bins = new Float32Array(analyser.frequencyBinCount);
      const sum = new Float64Array(analyser.frequencyBinCount);
      const deadline = performance.now() + seconds * 1000;
      await new Promise(r => setTimeout(r, 1000));
      let frames = 0;
      while (performance.now() < deadline) {
        analyser.getFloatFrequencyData(bins);
        for (let i = 0; i < bins.length; i++) sum[i] += Math.pow(10, bins[i] / 10);
        frames++;
        await new Promise(r => setTimeout(r, 100));
      }
      let peak = 1;
      for (let i = 2; i < sum.length; i++) if (sum[i] > sum[peak]) peak = i;
      const hz = peak * context.sampleRate / analyser.fftSize;
      let total = 0, near = 0;
      const binHz = context.sampleRate / analyser.fftSize;
      for (let i = 2; i < sum.length; i++) { total += sum[i]; if (Math.abs(i * binHz - hz) <= 40) near += sum[i]; }
      const stats = await pc.getStats();
      let dtlsState = null, pair = null, codecName = null, packetsReceived = 0, srtpCipher = null;
      stats.forEach(s => {
        if (s.type === "transport") { dtlsState = s.dtlsState; srtpCipher = s.srtpCipher || null; if (s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); }
        if (s.type === "inbound-rtp" && s.kind === "audio") { packetsReceived = s.packetsReceived; codecName = s.codecId && stats.get(s.codecId) ? stats.get(s.codecId).mimeType : null; }
      });
      const report = { peakHz: hz, peakShare: total > 0 ? near / total : 0, frames, connectedMs: connected, dtlsState, srtpCipher,
        selectedPair: pair ? { state: pair.state, nominated: pair.nominated, localCandidateId: pair.localCandidateId, remoteCandidateId: pair.remoteCandidateId,
                               remotePort: stats.get(pair.remoteCandidateId) ? stats.get(pair.remoteCandidateId).port : null } : null,
        codec: codecName, packetsReceived };
      status(JSON.stringify(report, null, 2));
      window.tandemEchoConnection = pc;
      return report;
    }

    window.tandemEcho = { run };
    document.getElementById("start").addEventListener("click", () => {
      run({ codec: document.getElementById("codec").value, seconds: 10 }).catch(e => status(String(e)));
    });
    """#
}
