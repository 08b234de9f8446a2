// media-load — N simulated browsers against Tandem's echo service, for tools/bench/media.
//
// Each call is what a browser does, using Tandem's own WebRTC code in the client role: an
// offer (Opus-only or PCMU-only) posted to /webkit/echo, ICE checks as the controlling agent
// with USE-CANDIDATE, a DTLS client handshake, SRTP; then 20 ms packets in real time from
// audio encoded once up front (speech-like: voiced syllables with a moving pitch, pauses,
// noise), replayed. Every echoed packet comes back with the timestamp it was sent with
// (Opus 48 kHz → G.711 ÷ 6 → echo → × 6), so its round trip through the gateway is measured.
//
//   media-load --url https://127.0.0.1:7443/webkit/echo --calls 100 --seconds 20 --codec opus
//
// Prints "steady" once every call has media flowing both ways, "done" at the end of the
// measured window (the bench samples the gateway's CPU between the two), then one JSON line.

import ArgumentParser
import Datapath
import Foundation
import Media
import Opus
import SDP
import STUN
import G711
import WebRTC

@main
struct MediaLoad: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "media-load", abstract: "N simulated browsers against Tandem's echo service.")

    @Option(help: "The echo service URL.") var url = "https://127.0.0.1:7443/webkit/echo"
    @Option(help: "Concurrent calls.") var calls = 10
    @Option(help: "Seconds of measured media, after every call is up.") var seconds = 20.0
    @Option(help: "opus (transcoded by the gateway) or pcmu (pass-through).") var codec = "opus"
    @Option(help: "Local address of the calls' sockets.") var bind = "127.0.0.1"
    @Option(help: "Seconds every call streams after the last one is up, before measuring (set-up work settles).") var settle = 3.0
    @Option(help: "Gateway mode: Tandem's HTTPS base URL (https://127.0.0.1:7443); browsers hold sessions and answer calls (tools/bench/calls).")
    var gateway: String?
    @Option(help: "Gateway mode: the OAuth access token for POST /api/v1/sessions.") var token = ""
    @Option(help: "Gateway mode: the extensions, first-last.") var extensions = "1000-1009"
    @Option(help: "Instead of calls: time the codec work of one transcoded call-frame at this Opus complexity (µs, JSON) and exit.")
    var codecCost: Int32?

    func run() throws {
        if let complexity = codecCost {
            say(try CodecCost.measure(complexity: complexity))
            return
        }
        if let gateway {
            let bounds = extensions.split(separator: "-").compactMap { Int($0) }
            guard bounds.count == 2, bounds[0] <= bounds[1], bounds[1] - bounds[0] < 5000 else { throw ValidationError("--extensions first-last, at most 5000") }
            let frames = try Recording.frames(codec: .opus)
            let loop = try DatapathLoop(name: "media-load")
            loop.start()
            let driver = LoopBound(Driver(loop: loop, frames: frames, codec: .opus), loop: loop)
            try GatewayMode.run(api: gateway, token: token, extensions: (bounds[0]...bounds[1]).map(String.init), bind: bind, loop: loop, driver: driver)
            return
        }
        guard calls > 0, calls <= 5000, seconds > 0, seconds <= 600 else { throw ValidationError("calls 1–5000, seconds up to 600") }
        let audioCodec: AudioCodec = codec == "pcmu" ? .pcmu : .opus
        let frames = try Recording.frames(codec: audioCodec)
        let identity = try DTLSIdentity(commonName: "media-load")
        let loop = try DatapathLoop(name: "media-load")
        loop.start()
        let driver = LoopBound(Driver(loop: loop, frames: frames, codec: audioCodec), loop: loop)

        // Set-up, a few calls at a time (curl posts the offers).
        var pending = Array(0..<calls)
        while !pending.isEmpty {
            let batch = pending.prefix(8)
            pending.removeFirst(batch.count)
            let group = DispatchGroup()
            let failures = Mutex2<[String]>([])
            for i in batch {
                group.enter()
                DispatchQueue.global().async {
                    defer { group.leave() }
                    do {
                        let setup = try CallSetup.make(index: i, bind: bind, codec: audioCodec, identity: identity, url: url)
                        _ = loop.execute { driver.value.add(setup) }
                    } catch {
                        failures.with { $0.append("call \(i): \(error)") }
                    }
                }
            }
            group.wait()
            if let first = failures.with({ $0.first }) { throw ValidationError(first) }
        }
        // Wait for every call to connect and hear its first echo.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let ready = try syncOnLoop(loop) { driver.value.echoingCalls }
            if ready == calls { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let ready = try syncOnLoop(loop) { driver.value.echoingCalls }
        guard ready == calls else { throw ValidationError("only \(ready) of \(calls) calls echo after 30 s") }
        Thread.sleep(forTimeInterval: max(0, min(settle, 60)))
        try syncOnLoop(loop) { driver.value.startMeasuring() }
        say("steady")
        Thread.sleep(forTimeInterval: seconds)
        say("done")
        try syncOnLoop(loop) { driver.value.stopSending() }
        Thread.sleep(forTimeInterval: 0.5)  // late echoes still count
        let seconds = self.seconds
        let report = try syncOnLoop(loop) { () -> String in
            let data = (try? JSONSerialization.data(withJSONObject: driver.value.report(seconds: seconds), options: [.sortedKeys])) ?? Data()
            return String(decoding: data, as: UTF8.self)
        }
        try syncOnLoop(loop) { driver.value.closeAll() }
        Thread.sleep(forTimeInterval: 0.2)
        say(report)
    }
}

/// A line on standard output, written at once (the bench reads it while the tool runs);
/// a write interrupted by a signal is retried.
func say(_ line: String) {
    var bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
        if n > 0 { offset += n } else if n < 0, errno == EINTR { continue } else { return }
    }
}

/// Runs `body` on the loop and waits for it.
func syncOnLoop<T: Sendable>(_ loop: DatapathLoop, _ body: @escaping @Sendable () -> T) throws -> T {
    let box = Mutex2<T?>(nil)
    let done = DispatchSemaphore(value: 0)
    guard loop.execute({ box.with { $0 = body() }; done.signal() }) else { throw ValidationError("loop stopped") }
    done.wait()
    return box.with { $0! }
}

/// A tiny lock-protected box (Foundation's NSLock).
final class Mutex2<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func with<R>(_ body: (inout T) -> R) -> R {
        lock.lock()
        defer { lock.unlock() }
        return body(&value)
    }
}

/// Audio encoded once and replayed by every call.
enum Recording {
    /// 10 s of a speech-like signal at 8 kHz: voiced syllables (a pitch gliding 100–220 Hz with
    /// formant-like harmonics), short pauses, and a little noise.
    static func signal() -> [Int16] {
        var rng = SystemRandomNumberGenerator()
        var out: [Int16] = []
        out.reserveCapacity(80_000)
        var phase = 0.0
        for n in 0..<80_000 {
            let t = Double(n) / 8000
            let syllable = t.truncatingRemainder(dividingBy: 0.3)
            let envelope = syllable < 0.22 ? sin(Double.pi * syllable / 0.22) : 0
            let pitch = 100 + 120 * (0.5 + 0.5 * sin(2 * Double.pi * 0.7 * t))
            phase += 2 * Double.pi * pitch / 8000
            var v = 0.0
            for (k, gain) in [(1, 1.0), (2, 0.6), (3, 0.5), (5, 0.3), (8, 0.2), (12, 0.1)] { v += gain * sin(Double(k) * phase) }
            let noise = Double(Int64(rng.next() % 2001) - 1000) / 1000
            out.append(Int16(max(-32000, min(32000, 4000 * envelope * v + 150 * noise))))
        }
        return out
    }

    /// 20 ms payloads: Opus as a browser honoring maxplaybackrate=8000 sends (narrowband,
    /// 32 kbit/s, complexity 10), or PCMU.
    static func frames(codec: AudioCodec) throws -> [[UInt8]] {
        let pcm = signal()
        switch codec {
        case .opus:
            let encoder = try OpusEncoder(.init(sampleRate: 8000, bitrate: 32000, complexity: 10, inbandFEC: true, expectedLossPercent: 5))
            return try stride(from: 0, to: pcm.count, by: 160).map { try encoder.encode(Array(pcm[$0..<($0 + 160)])) }
        case .pcmu, .pcma:
            return stride(from: 0, to: pcm.count, by: 160).map { G711.Law.muLaw.encode(Array(pcm[$0..<($0 + 160)])) }
        }
    }
}

/// The C libraries' own cost per 20 ms frame of one transcoded call, on this core now: what
/// the gateway can at best reach (the bench runs it beside each ramp, as the host's speed
/// moves from run to run).
enum CodecCost {
    static func measure(complexity: Int32) throws -> String {
        let pcm = Recording.signal()
        let browserFrames = try Recording.frames(codec: .opus)
        // The gateway's encoder toward the browser: 8 kHz in, 24 kbit/s, FEC idle until loss is reported.
        let encoder = try OpusEncoder(.init(sampleRate: 8000, bitrate: 24000, complexity: complexity, inbandFEC: true, expectedLossPercent: 0))
        let decoder = try OpusDecoder(sampleRate: 8000, channels: 1)
        var packet = [UInt8](repeating: 0, count: 1500)
        var out = [Int16](repeating: 0, count: 960)
        func best(_ body: () throws -> Void) rethrows -> Double {
            var fastest = Double.infinity
            for _ in 0..<3 {
                let t0 = DatapathLoop.monotonicNanoseconds()
                try body()
                fastest = min(fastest, Double(DatapathLoop.monotonicNanoseconds() - t0) / 1000 / Double(browserFrames.count))
            }
            return fastest
        }
        let encode = try best {
            for i in 0..<browserFrames.count {
                _ = try pcm.withUnsafeBufferPointer { p in
                    try packet.withUnsafeMutableBytes { try encoder.encode(UnsafeBufferPointer(rebasing: p[(i * 160)..<(i * 160 + 160)]), into: $0) }
                }
            }
        }
        let decode = try best {
            for frame in browserFrames {
                _ = try frame.withUnsafeBytes { f in try out.withUnsafeMutableBufferPointer { try decoder.decode(f, into: $0) } }
            }
        }
        let object: [String: Any] = ["complexity": Int(complexity), "encode_us": encode, "decode_us": decode,
                                     "calls_per_core": 1_000_000 / (50 * (encode + decode))]
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}
