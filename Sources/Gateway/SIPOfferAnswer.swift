import Datapath
import G711
import SDP
import STUN

/// The audio of a call's SIP leg as negotiated: the G.711 law both sides use, the
/// telephone-event payload type (RFC 4733) when both have it, where the peer receives
/// RTP, and the direction of our stream.
public struct SIPAudio: Sendable, Equatable {
    public var law: G711.Law
    public var telephoneEventPayloadType: UInt8?
    /// The peer's RTP address; nil while it is on hold the RFC 2543 way (c=0.0.0.0) or
    /// has not said yet.
    public var remote: DatagramAddress?
    /// Our direction toward the peer (RFC 3264 §5.1).
    public var direction: Direction

    public init(law: G711.Law, telephoneEventPayloadType: UInt8? = 101, remote: DatagramAddress? = nil, direction: Direction = .sendrecv) {
        self.law = law
        self.telephoneEventPayloadType = telephoneEventPayloadType
        self.remote = remote
        self.direction = direction
    }
}

/// Why a SIP peer's session description was not taken (answered with 488 or ended with BYE).
public enum SIPOfferAnswerError: Error, Sendable, Equatable, CustomStringConvertible {
    case unparsable(String)
    case noAudio
    case noCommonCodec
    case badConnectionAddress(String)

    public var description: String {
        switch self {
        case .unparsable(let why): "SDP does not parse: \(why)"
        case .noAudio: "no audio stream (m=audio with a port) in the SDP"
        case .noCommonCodec: "no G.711 (PCMU/PCMA) in the SDP"
        case .badConnectionAddress(let a): "connection address \(a) is not an IP address"
        }
    }
}

/// SDP offer/answer of the SIP leg (RFC 3264 over RFC 8866): one plain RTP/AVP audio
/// stream with PCMU and/or PCMA (RFC 3551) and telephone-event (RFC 4733), no ICE,
/// no encryption. Pure: descriptions in, descriptions and ``SIPAudio`` out.
public enum SIPOfferAnswer {
    /// The telephone-event payload type Tandem offers.
    public static let telephoneEventPayloadType: UInt8 = 101

    /// Where our RTP is received and how the session is named.
    public struct Local: Sendable {
        public var address: String
        public var port: UInt16
        public var sessionID: UInt64
        public var sessionVersion: UInt64

        public init(address: String, port: UInt16, sessionID: UInt64 = UInt64.random(in: 1...(1 << 62)), sessionVersion: UInt64 = 1) {
            self.address = address
            self.port = port
            self.sessionID = sessionID
            self.sessionVersion = sessionVersion
        }

        var addressType: String { address.contains(":") ? "IP6" : "IP4" }
    }

    /// An offer with `laws` in order of preference and, unless DTMF goes by SIP INFO,
    /// telephone-event 0-16.
    public static func offer(local: Local, laws: [G711.Law], direction: Direction = .sendrecv, telephoneEvents: Bool = true) -> SessionDescription {
        description(local: local, laws: laws, telephoneEvent: telephoneEvents ? telephoneEventPayloadType : nil, direction: direction)
    }

    /// Answers a peer's offer with the first law of `preference` it offers (the offer's own
    /// order among those otherwise), echoing its telephone-event payload type, and the
    /// direction RFC 3264 §6.1 gives for `wanting`.
    public static func answer(_ offer: SessionDescription, local: Local, preference: [G711.Law], wanting: Direction = .sendrecv,
                              telephoneEvents: Bool = true) throws(SIPOfferAnswerError) -> (answer: SessionDescription, audio: SIPAudio) {
        guard let audio = offer.media.first(where: { $0.media == "audio" && $0.port != 0 }) else { throw .noAudio }
        let offered = audio.payloadTypes.compactMap { law(of: $0, in: audio) }
        guard let law = preference.first(where: offered.contains) ?? offered.first else { throw .noCommonCodec }
        let event = telephoneEvents ? telephoneEvent(in: audio) : nil
        let direction = offer.direction(of: audio).answer(wanting: wanting)
        let answer = description(local: local, laws: [law], telephoneEvent: event, direction: direction)
        return (answer, SIPAudio(law: law, telephoneEventPayloadType: event, remote: try remote(of: audio, in: offer), direction: direction))
    }

    /// Parses the text of an offer and answers it.
    public static func answer(text: String, local: Local, preference: [G711.Law], wanting: Direction = .sendrecv,
                              telephoneEvents: Bool = true) throws(SIPOfferAnswerError) -> (answer: SessionDescription, audio: SIPAudio) {
        try answer(parse(text), local: local, preference: preference, wanting: wanting, telephoneEvents: telephoneEvents)
    }

    /// The peer's answer to our offer of `laws`.
    public static func apply(answer text: String, offered laws: [G711.Law], direction ours: Direction = .sendrecv) throws(SIPOfferAnswerError) -> SIPAudio {
        let answer = try parse(text)
        guard let audio = answer.media.first(where: { $0.media == "audio" && $0.port != 0 }) else { throw .noAudio }
        guard let law = audio.payloadTypes.lazy.compactMap({ law(of: $0, in: audio) }).first(where: laws.contains) else { throw .noCommonCodec }
        // The answerer's direction is the mirror of ours; ours is what both allow.
        let theirs = answer.direction(of: audio)
        let direction = theirs.answer(wanting: ours)
        return SIPAudio(law: law, telephoneEventPayloadType: telephoneEvent(in: audio), remote: try remote(of: audio, in: answer), direction: direction)
    }

    static func parse(_ text: String) throws(SIPOfferAnswerError) -> SessionDescription {
        do { return try SessionDescription(parsing: text) } catch { throw .unparsable("\(error)") }
    }

    static func description(local: Local, laws: [G711.Law], telephoneEvent: UInt8?, direction: Direction) -> SessionDescription {
        let connection = SessionDescription.Connection(addressType: local.addressType, address: local.address)
        var sdp = SessionDescription(origin: .init(username: "tandem", sessionID: String(local.sessionID), sessionVersion: local.sessionVersion,
                                                   addressType: local.addressType, address: local.address),
                                     sessionName: "Tandem", connection: connection)
        var formats = laws.map { String($0.payloadType) }
        var attributes = laws.map { Attribute("rtpmap", $0 == .muLaw ? "0 PCMU/8000" : "8 PCMA/8000") }
        if let telephoneEvent {
            formats.append(String(telephoneEvent))
            attributes += [Attribute("rtpmap", "\(telephoneEvent) telephone-event/8000"), Attribute("fmtp", "\(telephoneEvent) 0-16")]
        }
        attributes += [Attribute("ptime", "20"), Attribute(direction.rawValue)]
        sdp.media = [MediaDescription(media: "audio", port: local.port, proto: "RTP/AVP", formats: formats, attributes: attributes)]
        return sdp
    }

    static func law(of payloadType: UInt8, in media: MediaDescription) -> G711.Law? {
        guard let map = media.rtpMap(of: payloadType), map.clockRate == 8000 else { return nil }
        switch map.encodingName.uppercased() {
        case "PCMU": return .muLaw
        case "PCMA": return .aLaw
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
