import G711
import Opus

/// One frame of G.711 audio for the SIP leg: its payload and RTP timestamp at 8 kHz.
public struct G711Frame: Sendable, Equatable {
    public var payload: [UInt8]
    public var timestamp: UInt32
    /// First frame after silence or a discontinuity (RTP marker, RFC 3551 §4.1).
    public var marker: Bool
}

/// One Opus frame for the browser leg: its payload and RTP timestamp at 48 kHz (RFC 7587 §4.1).
public struct OpusFrame: Sendable, Equatable {
    public var payload: [UInt8]
    public var timestamp: UInt32
    public var marker: Bool
}

/// Browser → SIP: Opus RTP payloads to G.711 frames of 20 ms. Packets pass a low-delay
/// ``JitterBuffer`` (reordering, loss detection); a lost frame is rebuilt from the next
/// packet's in-band FEC when it has some, else concealed by Opus PLC, so the SIP side gets
/// a continuous stream. Decoding is straight to 8 kHz (no resampler). Timestamps follow
/// the browser's (48 kHz ÷ 6), so the SIP side's jitter buffer sees the true timing.
public final class OpusToG711 {
    public let law: G711.Law
    private let decoder: OpusDecoder
    private var jitter: JitterBuffer<[UInt8]>
    private var pcm = [Int16](repeating: 0, count: Opus.maximumSamples(sampleRate: 8000))
    /// Samples (at 8 kHz) of the last decoded frame: the size assumed for a lost one.
    private var lastFrameSamples = 160
    /// The 8 kHz timestamp the next frame starts at.
    private var nextTimestamp: UInt32?
    public private(set) var concealedFrames = 0
    public private(set) var recoveredFrames = 0
    public private(set) var undecodable = 0

    public init(law: G711.Law, holdMilliseconds: Int64 = 40) throws(OpusError) {
        self.law = law
        self.decoder = try OpusDecoder(sampleRate: 8000, channels: 1)
        self.jitter = JitterBuffer(holdMilliseconds: holdMilliseconds)
    }

    /// An Opus RTP packet's payload with its sequence number and 48 kHz timestamp, at `now` ms.
    public func receive(payload: [UInt8], sequence: UInt16, timestamp: UInt32, now: Int64) -> [G711Frame] {
        process(jitter.insert(sequence: sequence, timestamp: timestamp, payload: payload, now: now))
    }

    /// Releases frames held for a gap that has waited long enough (call every 10–20 ms).
    public func poll(now: Int64) -> [G711Frame] { process(jitter.poll(now: now)) }

    public var jitterBuffer: JitterBuffer<[UInt8]> { jitter }

    private func process(_ items: [JitterBuffer<[UInt8]>.Item]) -> [G711Frame] {
        var out: [G711Frame] = []
        for (i, item) in items.enumerated() {
            switch item {
            case .lost:
                // The frame right before a packet comes back from that packet's FEC data (RFC 6716 §2.1.7).
                if i + 1 < items.count, case .packet(_, _, let next) = items[i + 1] {
                    let n = decode(next, fec: true)
                    if n > 0 { recoveredFrames += 1; emit(n, marker: false, into: &out); continue }
                }
                let n = conceal()
                concealedFrames += 1
                emit(n, marker: false, into: &out)
            case .packet(_, let timestamp, let payload):
                let start = timestamp / 6
                let marker = nextTimestamp.map { $0 != start } ?? true
                nextTimestamp = start
                let n = decode(payload, fec: false)
                guard n > 0 else {
                    undecodable += 1
                    continue
                }
                lastFrameSamples = n
                emit(n, marker: marker, into: &out)
            }
        }
        return out
    }

    private func decode(_ payload: [UInt8], fec: Bool) -> Int {
        let frame = fec ? lastFrameSamples : pcm.count
        return (try? payload.withUnsafeBytes { p in try pcm.withUnsafeMutableBufferPointer { try decoder.decode(p, into: UnsafeMutableBufferPointer(rebasing: $0[0..<frame]), fec: fec) } }) ?? 0
    }

    private func conceal() -> Int {
        let frame = lastFrameSamples
        return (try? pcm.withUnsafeMutableBufferPointer { try decoder.concealLoss(into: UnsafeMutableBufferPointer(rebasing: $0[0..<frame])) }) ?? 0
    }

    /// Encodes `samples` decoded samples as 20 ms G.711 frames.
    private func emit(_ samples: Int, marker: Bool, into out: inout [G711Frame]) {
        var timestamp = nextTimestamp ?? 0
        var offset = 0
        var first = marker
        while offset < samples {
            let n = min(160, samples - offset)
            let payload = [UInt8](unsafeUninitializedCapacity: n) { buffer, count in
                pcm.withUnsafeBufferPointer { law.encode(UnsafeBufferPointer(rebasing: $0[offset..<(offset + n)]), into: UnsafeMutableRawBufferPointer(buffer)) }
                count = n
            }
            out.append(G711Frame(payload: payload, timestamp: timestamp, marker: first))
            first = false
            timestamp &+= UInt32(n)
            offset += n
        }
        nextTimestamp = timestamp
    }
}

/// SIP → browser: G.711 payloads (any ptime) to 20 ms Opus frames encoded from 8 kHz.
/// Samples are re-framed through a small FIFO; a timestamp jump (silence suppression, a
/// new talk spurt) restarts the framing at the new time with the marker bit set.
public final class G711ToOpus {
    public let law: G711.Law
    public let encoder: OpusEncoder
    private var fifo: [Int16] = []
    /// The 8 kHz timestamp of fifo[0].
    private var fifoTimestamp: UInt32 = 0
    /// The 8 kHz timestamp the next payload should start at.
    private var expected: UInt32?
    private var markNext = true
    private var packet = [UInt8](repeating: 0, count: 1500)
    public static let frameSamples = 160

    public init(law: G711.Law, configuration: OpusEncoder.Configuration = .init()) throws(OpusError) {
        self.law = law
        self.encoder = try OpusEncoder(configuration)
        fifo.reserveCapacity(4 * Self.frameSamples)
    }

    /// A G.711 RTP payload with its 8 kHz timestamp; returns the Opus frames now complete.
    public func receive(payload: [UInt8], timestamp: UInt32, marker: Bool) -> [OpusFrame] {
        guard !payload.isEmpty, payload.count <= 8000 else { return [] }
        if expected != timestamp || marker {
            // Discontinuity: drop the partial frame and start again at this time.
            fifo.removeAll(keepingCapacity: true)
            fifoTimestamp = timestamp
            markNext = true
        }
        expected = timestamp &+ UInt32(payload.count)
        fifo += law.decode(payload)
        var out: [OpusFrame] = []
        while fifo.count >= Self.frameSamples {
            let n = (try? fifo.withUnsafeBufferPointer { pcm in
                try packet.withUnsafeMutableBytes { try encoder.encode(UnsafeBufferPointer(rebasing: pcm[0..<Self.frameSamples]), into: $0) }
            }) ?? 0
            if n > 0 {
                out.append(OpusFrame(payload: Array(packet[0..<n]), timestamp: fifoTimestamp &* 6, marker: markNext))
                markNext = false
            }
            fifo.removeFirst(Self.frameSamples)
            fifoTimestamp &+= UInt32(Self.frameSamples)
        }
        return out
    }
}

/// An RFC 4733 §2.3 telephone-event payload (a DTMF digit and its duration so far).
public struct TelephoneEvent: Sendable, Equatable {
    /// 0–9, 10 = *, 11 = #, 12–15 = A–D, 16 = flash.
    public var event: UInt8
    public var end: Bool
    /// 0 (loudest) to 63 dBm0 below.
    public var volume: UInt8
    /// In RTP timestamp units of the stream carrying it.
    public var duration: UInt16

    public init(event: UInt8, end: Bool, volume: UInt8, duration: UInt16) {
        self.event = event
        self.end = end
        self.volume = volume
        self.duration = duration
    }

    public init?(parsing payload: [UInt8]) {
        guard payload.count >= 4 else { return nil }
        self.init(event: payload[0], end: payload[1] & 0x80 != 0, volume: payload[1] & 0x3F, duration: UInt16(payload[2]) << 8 | UInt16(payload[3]))
    }

    public var payload: [UInt8] { [event, (end ? 0x80 : 0) | (volume & 0x3F), UInt8(duration >> 8), UInt8(duration & 0xFF)] }

    /// The same event on a stream with another clock (48 kHz Opus ↔ 8 kHz G.711): the
    /// duration scaled by `to/from`, saturating at the field's maximum.
    public func rescaled(from: UInt32, to: UInt32) -> TelephoneEvent {
        var e = self
        e.duration = UInt16(min(UInt64(duration) * UInt64(to) / UInt64(max(from, 1)), UInt64(UInt16.max)))
        return e
    }

    /// The digit as a character ("0"–"9", "*", "#", "A"–"D"), or nil for other events.
    public var digit: Character? {
        let digits = Array("0123456789*#ABCD")
        return event < 16 ? digits[Int(event)] : nil
    }

    public static func event(for digit: Character) -> UInt8? {
        Array("0123456789*#ABCD").firstIndex(of: Character(digit.uppercased())).map(UInt8.init)
    }
}
