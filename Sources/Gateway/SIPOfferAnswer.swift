import Datapath
import G711
import SDP
import STUN

/// SRTP on the SIP leg, keyed by SDES (RFC 4568): what Tandem offers and accepts.
public enum SIPSRTPMode: String, Sendable, CaseIterable {
    /// Plain RTP only: a peer that offers only RTP/SAVP is refused (488).
    case off
    /// Offer RTP/AVP with `a=crypto` (best-effort SRTP); a peer without SDES gets plain RTP.
    case preferred
    /// Offer RTP/SAVP with `a=crypto`; a peer without SDES is refused (488, or BYE after its answer).
    case required
}

/// The SDES master keys (key ‖ salt, AES_CM_128_HMAC_SHA1_80) of a SIP leg's SRTP.
public struct SIPSRTPKeys: Sendable, Equatable {
    /// Ours: what we protect with (the key of our `a=crypto`).
    public var outbound: [UInt8]
    /// The peer's: what we unprotect with.
    public var inbound: [UInt8]

    public init(outbound: [UInt8], inbound: [UInt8]) {
        self.outbound = outbound
        self.inbound = inbound
    }
}

/// An audio codec of the SIP leg: G.711 µ-law or A-law (RFC 3551, static payload types 0
/// and 8; the browser's Opus is transcoded to it) or Opus (RFC 7587, a dynamic payload type;
/// the browser's Opus passes through untranscoded).
public enum SIPCodec: String, Sendable, CaseIterable {
    case opus, pcmu, pcma

    public init(_ law: G711.Law) { self = law == .muLaw ? .pcmu : .pcma }

    /// The G.711 law; nil for Opus.
    public var law: G711.Law? {
        switch self {
        case .pcmu: .muLaw
        case .pcma: .aLaw
        case .opus: nil
        }
    }

    /// The RTP clock (RFC 7587 §4.1: Opus is always 48 kHz).
    public var clockRate: UInt32 { self == .opus ? 48000 : 8000 }

    /// The payload type of our offers (Opus: dynamic, the one browsers use).
    public var offeredPayloadType: UInt8 {
        switch self {
        case .pcmu: 0
        case .pcma: 8
        case .opus: SIPOfferAnswer.opusPayloadType
        }
    }
}

/// The audio of a call's SIP leg as negotiated: the codec both sides use and its payload
/// type, the telephone-event payload type (RFC 4733) when both have it, where the peer
/// receives RTP, the direction of our stream, and the SRTP keys when SDES was agreed.
public struct SIPAudio: Sendable, Equatable {
    public var codec: SIPCodec
    /// The payload type of ``codec`` on this leg (the offerer's numbering).
    public var payloadType: UInt8
    public var telephoneEventPayloadType: UInt8?
    /// The peer's RTP address; nil while it is on hold the RFC 2543 way (c=0.0.0.0) or
    /// has not said yet.
    public var remote: DatagramAddress?
    /// Our direction toward the peer (RFC 3264 §5.1).
    public var direction: Direction
    /// SRTP (RFC 3711) keys; nil: plain RTP.
    public var srtp: SIPSRTPKeys?

    public init(codec: SIPCodec, payloadType: UInt8? = nil, telephoneEventPayloadType: UInt8? = 101, remote: DatagramAddress? = nil,
                direction: Direction = .sendrecv, srtp: SIPSRTPKeys? = nil) {
        self.codec = codec
        self.payloadType = payloadType ?? codec.offeredPayloadType
        self.telephoneEventPayloadType = telephoneEventPayloadType
        self.remote = remote
        self.direction = direction
        self.srtp = srtp
    }

    /// A G.711 leg.
    public init(law: G711.Law, telephoneEventPayloadType: UInt8? = 101, remote: DatagramAddress? = nil, direction: Direction = .sendrecv,
                srtp: SIPSRTPKeys? = nil) {
        self.init(codec: SIPCodec(law), telephoneEventPayloadType: telephoneEventPayloadType, remote: remote, direction: direction, srtp: srtp)
    }
}

/// Why a SIP peer's session description was not taken (answered with 488 or ended with BYE).
public enum SIPOfferAnswerError: Error, Sendable, Equatable, CustomStringConvertible {
    case unparsable(String)
    case noAudio
    case noCommonCodec
    case badConnectionAddress(String)
    /// SRTP is required here and the peer has no usable SDES line.
    case srtpRequired
    /// The peer offers only SRTP (RTP/SAVP) and SRTP is off here.
    case srtpOff
    /// The peer asks for SRTP with no `a=crypto` Tandem can run (suite, key size, MKI).
    case noUsableCrypto

    public var description: String {
        switch self {
        case .srtpRequired: "SRTP is required (sip.srtp) and the SDP has no usable a=crypto AES_CM_128_HMAC_SHA1_80"
        case .srtpOff: "the SDP offers only SRTP (RTP/SAVP) and SRTP is off (sip.srtp)"
        case .noUsableCrypto: "no a=crypto line with AES_CM_128_HMAC_SHA1_80, a 30-byte inline key and no MKI"
        case .unparsable(let why): "SDP does not parse: \(why)"
        case .noAudio: "no audio stream (m=audio with a port) in the SDP"
        case .noCommonCodec: "no enabled codec (PCMU, PCMA, or Opus when it is enabled) in the SDP"
        case .badConnectionAddress(let a): "connection address \(a) is not an IP address"
        }
    }
}

/// SDP offer/answer of the SIP leg (RFC 3264 over RFC 8866): one audio stream with Opus
/// (RFC 7587), PCMU and/or PCMA (RFC 3551) and telephone-event (RFC 4733), no ICE; plain RTP/AVP, or SRTP
/// keyed by SDES (RFC 4568, AES_CM_128_HMAC_SHA1_80) as ``SIPSRTPMode`` says.
/// Pure: descriptions in, descriptions and ``SIPAudio`` out.
public enum SIPOfferAnswer {
    /// The telephone-event payload type Tandem offers.
    public static let telephoneEventPayloadType: UInt8 = 101
    /// The Opus payload type Tandem offers (the one browsers use).
    public static let opusPayloadType: UInt8 = 111

    /// Where our RTP is received, how the session is named, and our SRTP key.
    public struct Local: Sendable {
        public var address: String
        public var port: UInt16
        public var sessionID: UInt64
        public var sessionVersion: UInt64
        public var srtpMode: SIPSRTPMode
        /// Our SDES master key ‖ salt (random per call; kept across re-INVITEs).
        public var srtpKey: [UInt8]

        public init(address: String, port: UInt16, sessionID: UInt64 = UInt64.random(in: 1...(1 << 62)), sessionVersion: UInt64 = 1,
                    srtpMode: SIPSRTPMode = .off, srtpKey: [UInt8]? = nil) {
            self.address = address
            self.port = port
            self.sessionID = sessionID
            self.sessionVersion = sessionVersion
            self.srtpMode = srtpMode
            var generator = SystemRandomNumberGenerator()
            self.srtpKey = srtpKey ?? (0..<SDESCrypto.keyAndSaltLength).map { _ in UInt8.random(in: 0...255, using: &generator) }
        }

        /// Our `a=crypto` line under `tag`.
        func crypto(tag: UInt32 = 1) -> SDESCrypto { SDESCrypto(tag: tag, keyAndSalt: srtpKey) }

        var addressType: String { address.contains(":") ? "IP6" : "IP4" }
    }

    /// An offer with `codecs` in order of preference and, unless DTMF goes by SIP INFO,
    /// telephone-event 0-16.
    public static func offer(local: Local, codecs: [SIPCodec], direction: Direction = .sendrecv, telephoneEvents: Bool = true) -> SessionDescription {
        description(local: local, codecs: codecs.map { ($0, $0.offeredPayloadType) }, telephoneEvent: telephoneEvents ? telephoneEventPayloadType : nil, direction: direction,
                    proto: local.srtpMode == .required ? "RTP/SAVP" : "RTP/AVP", crypto: local.srtpMode == .off ? nil : local.crypto())
    }

    /// Answers a peer's offer with the first codec of `preference` it offers (among G.711,
    /// the offer's own order otherwise; Opus only when `preference` has it), under the
    /// offer's payload type, echoing its telephone-event payload type, and the direction
    /// RFC 3264 §6.1 gives for `wanting`.
    public static func answer(_ offer: SessionDescription, local: Local, preference: [SIPCodec], wanting: Direction = .sendrecv,
                              telephoneEvents: Bool = true) throws(SIPOfferAnswerError) -> (answer: SessionDescription, audio: SIPAudio) {
        guard let audio = offer.media.first(where: { $0.media == "audio" && $0.port != 0 }) else { throw .noAudio }
        let offered = audio.payloadTypes.compactMap { pt in codec(of: pt, in: audio).map { ($0, pt) } }
            .filter { $0.0 != .opus || preference.contains(.opus) }
        guard let (codec, payloadType) = preference.lazy.compactMap({ c in offered.first { $0.0 == c } }).first ?? offered.first else { throw .noCommonCodec }
        let event = telephoneEvents ? telephoneEvent(in: audio) : nil
        let direction = offer.direction(of: audio).answer(wanting: wanting)
        // RFC 4568 §7.1.2: answer the first usable crypto line with ours under its tag.
        let secureOnly = audio.proto.uppercased().hasSuffix("SAVP")
        let theirs = audio.cryptoAttributes.first(where: \.isUsable)
        var crypto: SDESCrypto?
        switch local.srtpMode {
        case .off:
            if secureOnly { throw .srtpOff }
        case .preferred, .required:
            if let theirs {
                crypto = local.crypto(tag: theirs.tag)
            } else if secureOnly || local.srtpMode == .required {
                throw secureOnly ? .noUsableCrypto : .srtpRequired
            }
        }
        let answer = description(local: local, codecs: [(codec, payloadType)], telephoneEvent: event, direction: direction, proto: audio.proto, crypto: crypto)
        let keys = theirs.flatMap { t in crypto.map { SIPSRTPKeys(outbound: $0.keyAndSalt, inbound: t.keyAndSalt) } }
        return (answer, SIPAudio(codec: codec, payloadType: payloadType, telephoneEventPayloadType: event, remote: try remote(of: audio, in: offer), direction: direction, srtp: keys))
    }

    /// Parses the text of an offer and answers it.
    public static func answer(text: String, local: Local, preference: [SIPCodec], wanting: Direction = .sendrecv,
                              telephoneEvents: Bool = true) throws(SIPOfferAnswerError) -> (answer: SessionDescription, audio: SIPAudio) {
        try answer(parse(text), local: local, preference: preference, wanting: wanting, telephoneEvents: telephoneEvents)
    }

    /// The peer's answer to our offer of `codecs` (made from `local`: its SRTP mode and key):
    /// the first of its codecs we offered, under its payload type.
    public static func apply(answer text: String, offered codecs: [SIPCodec], direction ours: Direction = .sendrecv,
                             local: Local? = nil) throws(SIPOfferAnswerError) -> SIPAudio {
        let answer = try parse(text)
        guard let audio = answer.media.first(where: { $0.media == "audio" && $0.port != 0 }) else { throw .noAudio }
        guard let (codec, payloadType) = audio.payloadTypes.lazy.compactMap({ pt in codec(of: pt, in: audio).map { ($0, pt) } }).first(where: { codecs.contains($0.0) }) else {
            throw .noCommonCodec
        }
        // The answerer's direction is the mirror of ours; ours is what both allow.
        let theirs = answer.direction(of: audio)
        let direction = theirs.answer(wanting: ours)
        var keys: SIPSRTPKeys?
        if let local, local.srtpMode != .off {
            // We offered tag 1; the answer must accept it (RFC 4568 §7.1.3).
            if let crypto = audio.cryptoAttributes.first(where: { $0.tag == 1 && $0.isUsable }) {
                keys = SIPSRTPKeys(outbound: local.srtpKey, inbound: crypto.keyAndSalt)
            } else if local.srtpMode == .required {
                throw .srtpRequired
            }
        }
        return SIPAudio(codec: codec, payloadType: payloadType, telephoneEventPayloadType: telephoneEvent(in: audio), remote: try remote(of: audio, in: answer), direction: direction, srtp: keys)
    }

    static func parse(_ text: String) throws(SIPOfferAnswerError) -> SessionDescription {
        do { return try SessionDescription(parsing: text) } catch { throw .unparsable("\(error)") }
    }

    static func description(local: Local, codecs: [(SIPCodec, UInt8)], telephoneEvent: UInt8?, direction: Direction, proto: String = "RTP/AVP",
                            crypto: SDESCrypto? = nil) -> SessionDescription {
        let connection = SessionDescription.Connection(addressType: local.addressType, address: local.address)
        var sdp = SessionDescription(origin: .init(username: "tandem", sessionID: String(local.sessionID), sessionVersion: local.sessionVersion,
                                                   addressType: local.addressType, address: local.address),
                                     sessionName: "Tandem", connection: connection)
        var formats = codecs.map { String($0.1) }
        var attributes: [Attribute] = []
        for (codec, pt) in codecs {
            switch codec {
            case .pcmu: attributes.append(Attribute("rtpmap", "\(pt) PCMU/8000"))
            case .pcma: attributes.append(Attribute("rtpmap", "\(pt) PCMA/8000"))
            case .opus:
                // RFC 7587 §7: always "/48000/2"; in-band FEC as the browsers send it.
                attributes += [Attribute("rtpmap", "\(pt) opus/48000/2"), Attribute("fmtp", "\(pt) minptime=10;useinbandfec=1")]
            }
        }
        if let telephoneEvent {
            formats.append(String(telephoneEvent))
            attributes += [Attribute("rtpmap", "\(telephoneEvent) telephone-event/8000"), Attribute("fmtp", "\(telephoneEvent) 0-16")]
        }
        attributes += [Attribute("ptime", "20"), Attribute(direction.rawValue)]
        if let crypto { attributes.append(Attribute("crypto", crypto.value)) }
        sdp.media = [MediaDescription(media: "audio", port: local.port, proto: proto, formats: formats, attributes: attributes)]
        return sdp
    }

    static func codec(of payloadType: UInt8, in media: MediaDescription) -> SIPCodec? {
        guard let map = media.rtpMap(of: payloadType) else { return nil }
        switch (map.encodingName.uppercased(), map.clockRate) {
        case ("PCMU", 8000): return .pcmu
        case ("PCMA", 8000): return .pcma
        case ("OPUS", 48000) where (map.channels ?? 2) == 2: return .opus
        default: return nil
        }
    }

    static func telephoneEvent(in media: MediaDescription) -> UInt8? {
        media.payloadTypes.first { pt in
            guard let map = media.rtpMap(of: pt) else { return false }
            return map.encodingName.lowercased() == "telephone-event" && map.clockRate == 8000
        }
    }

    /// The stream's address: its own c= or the session's; nil for 0.0.0.0 (hold, RFC 3264 §8.4).
    static func remote(of media: MediaDescription, in sdp: SessionDescription) throws(SIPOfferAnswerError) -> DatagramAddress? {
        guard let text = (media.connection ?? sdp.connection)?.address else { return nil }
        guard let ip = IPAddress(text) else { throw .badConnectionAddress(text) }
        if text == "0.0.0.0" || text == "::" { return nil }
        return DatagramAddress(TransportAddress(ip: ip, port: media.port))
    }
}
