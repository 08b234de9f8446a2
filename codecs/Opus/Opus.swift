import COpus

/// Opus (RFC 6716) through Debian's libopus, for the narrowband SIP side of the gateway.
///
/// The decoder runs at 8 kHz mono, so a browser's 48 kHz stream is decoded straight to the
/// G.711 rate (libopus resamples internally, band-limited), and the encoder takes 8 kHz
/// mono, so there is no separate resampler anywhere (RFC 7587 §4: the RTP clock stays
/// 48 kHz whatever the coded bandwidth). Encoder and decoder are plain classes confined
/// to the loop of the call that owns them. Knows nothing of RTP; used by `Media`.
public enum Opus {
    /// Samples per channel in `packet` at `sampleRate`, from its TOC byte and frame count
    /// (RFC 6716 §3.1–3.2), or nil for a malformed packet.
    public static func sampleCount(of packet: UnsafeRawBufferPointer, sampleRate: Int32) -> Int? {
        guard let base = packet.baseAddress, packet.count > 0, packet.count <= Int(Int32.max) else { return nil }
        let n = opus_packet_get_nb_samples(base.assumingMemoryBound(to: UInt8.self), Int32(packet.count), sampleRate)
        return n > 0 ? Int(n) : nil
    }

    /// Largest frame a packet may decode to: 120 ms (RFC 6716 §3.2.5).
    public static func maximumSamples(sampleRate: Int32) -> Int { Int(sampleRate) * 120 / 1000 }
}

/// A libopus error code with its text.
public struct OpusError: Error, Sendable, Equatable, CustomStringConvertible {
    public let code: Int32
    public init(code: Int32) { self.code = code }
    public var description: String { "opus: " + String(cString: opus_strerror(code)) }
}

/// An Opus encoder for 16-bit PCM (RFC 6716), tuned for speech.
public final class OpusEncoder {
    /// The encoder's settings; `complexity` can change per frame (the load governor lowers it).
    public struct Configuration: Sendable, Equatable {
        /// Input sample rate: 8000, 12000, 16000, 24000 or 48000.
        public var sampleRate: Int32
        public var channels: Int32
        public var bitrate: Int32
        /// 0 (cheapest) to 10 (best).
        public var complexity: Int32
        /// In-band forward error correction (LBRR, RFC 6716 §2.1.7), for the receiver to recover a lost frame.
        public var inbandFEC: Bool
        /// The loss the encoder plans FEC for.
        public var expectedLossPercent: Int32
        public var discontinuousTransmission: Bool

        public init(sampleRate: Int32 = 8000, channels: Int32 = 1, bitrate: Int32 = 24000, complexity: Int32 = 5, inbandFEC: Bool = true, expectedLossPercent: Int32 = 5, discontinuousTransmission: Bool = false) {
            self.sampleRate = sampleRate
            self.channels = channels
            self.bitrate = bitrate
            self.complexity = complexity
            self.inbandFEC = inbandFEC
            self.expectedLossPercent = expectedLossPercent
            self.discontinuousTransmission = discontinuousTransmission
        }
    }

    private let state: OpaquePointer
    public let configuration: Configuration

    public init(_ configuration: Configuration = Configuration()) throws(OpusError) {
        var error: Int32 = OPUS_OK
        guard let state = opus_encoder_create(configuration.sampleRate, configuration.channels, OPUS_APPLICATION_VOIP, &error), error == OPUS_OK else {
            throw OpusError(code: error == OPUS_OK ? OPUS_ALLOC_FAIL : error)
        }
        self.state = state
        self.configuration = configuration
        for result in [
            tandem_opus_encoder_set_signal_voice(state),
            tandem_opus_encoder_set_bitrate(state, configuration.bitrate),
            tandem_opus_encoder_set_complexity(state, configuration.complexity),
            tandem_opus_encoder_set_inband_fec(state, configuration.inbandFEC ? 1 : 0),
            tandem_opus_encoder_set_packet_loss_percent(state, configuration.expectedLossPercent),
            tandem_opus_encoder_set_dtx(state, configuration.discontinuousTransmission ? 1 : 0),
        ] where result != OPUS_OK {
            opus_encoder_destroy(state)
            throw OpusError(code: result)
        }
    }

    deinit { opus_encoder_destroy(state) }

    /// The value an OPUS_GET_… request reports.
    private func read(_ request: (OpaquePointer, UnsafeMutablePointer<Int32>) -> Int32) -> Int32 {
        var value: Int32 = 0
        _ = request(state, &value)
        return value
    }

    /// The encoder complexity (0–10); setting it takes effect with the next frame.
    public var complexity: Int32 {
        get { read(tandem_opus_encoder_get_complexity) }
        set { _ = tandem_opus_encoder_set_complexity(state, max(0, min(10, newValue))) }
    }

    /// The packet loss, in percent, the encoder plans in-band FEC for (OPUS_SET_PACKET_LOSS_PERC):
    /// at 0 it sends no LBRR data, above 0 it spends bits on FEC in proportion (RFC 6716 §2.1.7).
    public var expectedLossPercent: Int32 {
        get { read(tandem_opus_encoder_get_packet_loss_percent) }
        set { _ = tandem_opus_encoder_set_packet_loss_percent(state, max(0, min(100, newValue))) }
    }

    /// Samples per channel of look-ahead the encoder adds to the delay.
    public var lookahead: Int { Int(read(tandem_opus_encoder_get_lookahead)) }

    /// Encodes one frame (2.5–60 ms of interleaved samples) into `packet`; returns the packet's length.
    public func encode(_ pcm: UnsafeBufferPointer<Int16>, into packet: UnsafeMutableRawBufferPointer) throws(OpusError) -> Int {
        guard let input = pcm.baseAddress, let output = packet.baseAddress else { throw OpusError(code: OPUS_BAD_ARG) }
        let frameSize = Int32(pcm.count) / configuration.channels
        let n = opus_encode(state, input, frameSize, output.assumingMemoryBound(to: UInt8.self), Int32(min(packet.count, 1275 * 3)))
        guard n > 0 else { throw OpusError(code: n < 0 ? n : OPUS_INTERNAL_ERROR) }
        return Int(n)
    }

    /// Encodes one frame into a new array.
    public func encode(_ pcm: [Int16]) throws(OpusError) -> [UInt8] {
        var packet = [UInt8](repeating: 0, count: 1500)
        let result = pcm.withUnsafeBufferPointer { input in
            packet.withUnsafeMutableBytes { output in Result { () throws(OpusError) in try encode(input, into: output) } }
        }
        let n = try result.get()
        packet.removeLast(packet.count - n)
        return packet
    }
}

/// An Opus decoder to 16-bit PCM at a chosen rate (RFC 6716 §4), with packet loss
/// concealment and in-band FEC recovery.
public final class OpusDecoder {
    private let state: OpaquePointer
    public let sampleRate: Int32
    public let channels: Int32

    public init(sampleRate: Int32 = 8000, channels: Int32 = 1) throws(OpusError) {
        var error: Int32 = OPUS_OK
        guard let state = opus_decoder_create(sampleRate, channels, &error), error == OPUS_OK else {
            throw OpusError(code: error == OPUS_OK ? OPUS_ALLOC_FAIL : error)
        }
        self.state = state
        self.sampleRate = sampleRate
        self.channels = channels
    }

    deinit { opus_decoder_destroy(state) }

    /// Decodes `packet` into `pcm`; returns samples per channel. With `fec`, decodes the
    /// in-band FEC copy of the *previous* (lost) frame that `packet` carries; `pcm` then
    /// must be exactly that frame's length.
    public func decode(_ packet: UnsafeRawBufferPointer, into pcm: UnsafeMutableBufferPointer<Int16>, fec: Bool = false) throws(OpusError) -> Int {
        guard let input = packet.baseAddress, packet.count > 0, let output = pcm.baseAddress else { throw OpusError(code: OPUS_BAD_ARG) }
        let n = opus_decode(state, input.assumingMemoryBound(to: UInt8.self), Int32(min(packet.count, Int(Int32.max))), output, Int32(pcm.count) / channels, fec ? 1 : 0)
        guard n >= 0 else { throw OpusError(code: n) }
        return Int(n)
    }

    /// Fills `pcm` (a whole number of 2.5 ms frames) with concealment for a lost packet (PLC).
    public func concealLoss(into pcm: UnsafeMutableBufferPointer<Int16>) throws(OpusError) -> Int {
        guard let output = pcm.baseAddress else { throw OpusError(code: OPUS_BAD_ARG) }
        let n = opus_decode(state, nil, 0, output, Int32(pcm.count) / channels, 0)
        guard n >= 0 else { throw OpusError(code: n) }
        return Int(n)
    }

    /// Decodes a packet into a new array.
    public func decode(_ packet: [UInt8]) throws(OpusError) -> [Int16] {
        var pcm = [Int16](repeating: 0, count: Opus.maximumSamples(sampleRate: sampleRate) * Int(channels))
        let result = packet.withUnsafeBytes { input in
            pcm.withUnsafeMutableBufferPointer { output in Result { () throws(OpusError) in try decode(input, into: output) } }
        }
        let n = try result.get()
        pcm.removeLast(pcm.count - n * Int(channels))
        return pcm
    }

    /// Samples per channel of the last decoded packet.
    public var lastPacketDuration: Int {
        var value: Int32 = 0
        _ = tandem_opus_decoder_get_last_packet_duration(state, &value)
        return Int(value)
    }
}
