import G711
import Opus

/// Where a transcoder hands each frame it completes: the payload (valid only during the
/// call), its RTP timestamp in the output's clock, and whether it starts a talk spurt
/// (RTP marker, RFC 3551 §4.1). Frames go out as they are made, without an array per packet.
public typealias FrameSink = (_ payload: UnsafeRawBufferPointer, _ timestamp: UInt32, _ marker: Bool) -> Void

/// Browser → SIP: Opus RTP payloads to G.711 frames of 20 ms. Packets pass a low-delay
/// ``JitterBuffer`` (reordering, loss detection); a lost frame is rebuilt from the next
/// packet's in-band FEC when it has some, else concealed by Opus PLC, so the SIP side gets
/// a continuous stream. Decoding is straight to 8 kHz (no resampler). Timestamps follow
/// the browser's (48 kHz ÷ 6), so the SIP side's jitter buffer sees the true timing.
public final class OpusToG711 {
    public let law: G711.Law
    private let decoder: OpusDecoder
    private var jitter: JitterBuffer<[UInt8]>
    /// Decoded samples of one packet (up to 120 ms at 8 kHz), and one G.711 frame.
    private let pcm = UnsafeMutableBufferPointer<Int16>.allocate(capacity: Opus.maximumSamples(sampleRate: 8000))
    private let g711 = UnsafeMutableRawBufferPointer.allocate(byteCount: 160, alignment: 8)
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

    deinit {
        pcm.deallocate()
        g711.deallocate()
    }

    /// An Opus RTP packet's payload with its sequence number and 48 kHz timestamp, at `now`
    /// ms; the G.711 frames it completes (8 kHz timestamps) go to `emit`.
    public func receive(payload: UnsafeRawBufferPointer, sequence: UInt16, timestamp: UInt32, now: Int64, emit: FrameSink) {
        process(jitter.insert(sequence: sequence, timestamp: timestamp, payload: Array(payload), now: now), emit)
    }

    /// Releases frames held for a gap that has waited long enough (call every 10–20 ms).
    public func poll(now: Int64, emit: FrameSink) { process(jitter.poll(now: now), emit) }

    public var jitterBuffer: JitterBuffer<[UInt8]> { jitter }

    private func process(_ items: [JitterBuffer<[UInt8]>.Item], _ emit: FrameSink) {
        for (i, item) in items.enumerated() {
            switch item {
            case .lost:
                // The frame right before a packet comes back from that packet's FEC data (RFC 6716 §2.1.7).
                if i + 1 < items.count, case .packet(_, _, let next) = items[i + 1] {
                    let n = decode(next, fec: true)
                    if n > 0 { recoveredFrames += 1; frame(n, marker: false, emit); continue }
                }
                let n = (try? decoder.concealLoss(into: UnsafeMutableBufferPointer(rebasing: pcm[0..<lastFrameSamples]))) ?? 0
                concealedFrames += 1
                frame(n, marker: false, emit)
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
                frame(n, marker: marker, emit)
            }
        }
    }

    private func decode(_ payload: [UInt8], fec: Bool) -> Int {
        let capacity = fec ? lastFrameSamples : pcm.count
        return (try? payload.withUnsafeBytes { try decoder.decode($0, into: UnsafeMutableBufferPointer(rebasing: pcm[0..<capacity]), fec: fec) }) ?? 0
    }

    /// Hands `samples` decoded samples on as 20 ms G.711 frames.
    private func frame(_ samples: Int, marker: Bool, _ emit: FrameSink) {
        var timestamp = nextTimestamp ?? 0
        var offset = 0
        var first = marker
        while offset < samples {
            let n = min(160, samples - offset)
            law.encode(UnsafeBufferPointer(rebasing: pcm[offset..<(offset + n)]), into: g711)
            emit(UnsafeRawBufferPointer(rebasing: g711[0..<n]), timestamp, first)
            first = false
            timestamp &+= UInt32(n)
            offset += n
        }
        nextTimestamp = timestamp
    }
}

/// SIP → browser: G.711 payloads (any ptime) to 20 ms Opus frames encoded from 8 kHz.
/// Samples are re-framed through a one-frame FIFO; a timestamp jump (silence suppression, a
/// new talk spurt) restarts the framing at the new time with the marker bit set.
public final class G711ToOpus {
    public let law: G711.Law
    public let encoder: OpusEncoder
    public static let frameSamples = 160
    /// The samples of the frame being filled, and the encoded packet.
    private let fifo = UnsafeMutableBufferPointer<Int16>.allocate(capacity: frameSamples)
    private var fifoCount = 0
    private let packet = UnsafeMutableRawBufferPointer.allocate(byteCount: 1500, alignment: 8)
    /// The 8 kHz timestamp of fifo[0].
    private var fifoTimestamp: UInt32 = 0
    /// The 8 kHz timestamp the next payload should start at.
    private var expected: UInt32?
    private var markNext = true

    public init(law: G711.Law, configuration: OpusEncoder.Configuration = .init()) throws(OpusError) {
        self.law = law
        self.encoder = try OpusEncoder(configuration)
    }

    deinit {
        fifo.deallocate()
        packet.deallocate()
    }

    /// A G.711 RTP payload with its 8 kHz timestamp; the Opus frames it completes (48 kHz
    /// timestamps) go to `emit`.
    public func receive(payload: UnsafeRawBufferPointer, timestamp: UInt32, marker: Bool, emit: FrameSink) {
        guard !payload.isEmpty, payload.count <= 8000 else { return }
        if expected != timestamp || marker {
            // Discontinuity: drop the partial frame and start again at this time.
            fifoCount = 0
            fifoTimestamp = timestamp
            markNext = true
        }
        expected = timestamp &+ UInt32(payload.count)
        var offset = 0
        while offset < payload.count {
            let n = min(Self.frameSamples - fifoCount, payload.count - offset)
            law.decode(UnsafeRawBufferPointer(rebasing: payload[offset..<(offset + n)]), into: UnsafeMutableBufferPointer(rebasing: fifo[fifoCount..<(fifoCount + n)]))
            fifoCount += n
            offset += n
            guard fifoCount == Self.frameSamples else { break }
            if let size = try? encoder.encode(UnsafeBufferPointer(fifo), into: packet), size > 0 {
                emit(UnsafeRawBufferPointer(rebasing: packet[0..<size]), fifoTimestamp &* 6, markNext)
                markNext = false
            }
            fifoCount = 0
            fifoTimestamp &+= UInt32(Self.frameSamples)
        }
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
