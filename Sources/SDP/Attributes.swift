/// A type with an ordered attribute list: a session or a media section.
public protocol AttributeCarrier {
    var attributes: [Attribute] { get set }
}

extension SessionDescription: AttributeCarrier {}
extension MediaDescription: AttributeCarrier {}

extension AttributeCarrier {
    /// The first attribute named `name`.
    public func attribute(_ name: String) -> Attribute? { attributes.first { $0.name == name } }
    /// The values of every attribute named `name`, in order.
    public func values(of name: String) -> [String] { attributes.compactMap { $0.name == name ? $0.value : nil } }
    public func has(_ name: String) -> Bool { attributes.contains { $0.name == name } }
    public mutating func remove(_ name: String) { attributes.removeAll { $0.name == name } }
    /// Replaces every attribute named `name` with one.
    public mutating func set(_ name: String, _ value: String? = nil) {
        if let i = attributes.firstIndex(where: { $0.name == name }) {
            var kept = attributes.enumerated().filter { $0.offset <= i || $0.element.name != name }.map(\.element)
            kept[i].value = value
            attributes = kept
        } else {
            attributes.append(Attribute(name, value))
        }
    }
    public mutating func append(_ name: String, _ value: String? = nil) { attributes.append(Attribute(name, value)) }

    /// `a=ice-ufrag` (RFC 8839 §5.4).
    public var iceUsernameFragment: String? { attribute("ice-ufrag")?.value }
    /// `a=ice-pwd` (RFC 8839 §5.4).
    public var icePassword: String? { attribute("ice-pwd")?.value }
    /// `a=ice-options` tokens, e.g. "trickle", "ice2" (RFC 8839 §5.6).
    public var iceOptions: [String] { values(of: "ice-options").flatMap { $0.split(separator: " ").map(String.init) } }
    /// `a=fingerprint` values (RFC 8122 §5).
    public var fingerprints: [Fingerprint] { values(of: "fingerprint").compactMap(Fingerprint.init(parsing:)) }
    /// `a=setup` (RFC 4145 §4, RFC 8842 §5).
    public var setup: SetupRole? { attribute("setup")?.value.flatMap(SetupRole.init(rawValue:)) }
    /// The direction attribute (RFC 8866 §6.7), when one is present.
    public var direction: Direction? { attributes.lazy.compactMap { $0.value == nil ? Direction(rawValue: $0.name) : nil }.first }
    /// `a=extmap` lines (RFC 8285), kept for relaying; Tandem does not use header extensions.
    public var extensionMaps: [String] { values(of: "extmap") }
}

extension SessionDescription {
    /// `a=ice-lite` at session level (RFC 8839 §5.3).
    public var isICELite: Bool { has("ice-lite") }
    /// `a=group` lines (RFC 5888 §5), e.g. BUNDLE with its mids (RFC 8843).
    public var groups: [Group] { values(of: "group").compactMap(Group.init(parsing:)) }

    /// A media section's ICE credentials: its own, else the session's (RFC 8839 §5.4).
    public func iceCredentials(of media: MediaDescription) -> (usernameFragment: String, password: String)? {
        guard let ufrag = media.iceUsernameFragment ?? iceUsernameFragment, let pwd = media.icePassword ?? icePassword else { return nil }
        return (ufrag, pwd)
    }

    /// A media section's fingerprints: its own, else the session's (RFC 8122 §5).
    public func fingerprints(of media: MediaDescription) -> [Fingerprint] {
        let own = media.fingerprints
        return own.isEmpty ? fingerprints : own
    }

    /// A media section's direction: its own, else the session's, else sendrecv.
    public func direction(of media: MediaDescription) -> Direction { media.direction ?? direction ?? .sendrecv }
}

extension MediaDescription {
    /// `a=mid` (RFC 5888 §4).
    public var mid: String? { attribute("mid")?.value }
    /// `a=rtcp-mux` (RFC 5761 §5.1.3).
    public var isRTCPMultiplexed: Bool { has("rtcp-mux") }
    /// `a=candidate` lines that parse (RFC 8839 §5.1); others are ignored as the RFC asks.
    public var candidates: [ICECandidate] { values(of: "candidate").compactMap { try? ICECandidate(parsing: $0) } }
    /// `a=end-of-candidates` (RFC 8840 §8.2).
    public var hasEndOfCandidates: Bool { has("end-of-candidates") }
    /// `a=rtpmap` lines by payload type (RFC 8866 §6.6).
    public var rtpMaps: [RTPMap] { values(of: "rtpmap").compactMap(RTPMap.init(parsing:)) }
    /// The `a=fmtp` parameters of one payload type (RFC 8866 §6.15).
    public func formatParameters(of payloadType: UInt8) -> FormatParameters? {
        values(of: "fmtp").lazy.compactMap(FormatParameters.init(parsing:)).first { $0.payloadType == payloadType }
    }
    /// `a=rtcp-fb` lines (RFC 4585 §4.2).
    public var rtcpFeedback: [RTCPFeedback] { values(of: "rtcp-fb").compactMap(RTCPFeedback.init(parsing:)) }
    /// `a=ssrc` lines (RFC 5576 §4.1).
    public var ssrcAttributes: [SSRCAttribute] { values(of: "ssrc").compactMap(SSRCAttribute.init(parsing:)) }
    /// The distinct SSRCs of `a=ssrc` lines, in order of appearance.
    public var ssrcs: [UInt32] {
        var seen: [UInt32] = []
        for a in ssrcAttributes where !seen.contains(a.ssrc) { seen.append(a.ssrc) }
        return seen
    }
    /// `a=msid` (RFC 8830 §2).
    public var mediaStreamID: String? { attribute("msid")?.value }
    /// Payload types as numbers (formats that are not numbers are left out).
    public var payloadTypes: [UInt8] { formats.compactMap { UInt8($0) } }
    /// The rtpmap of a payload type, or the static one of RFC 3551 for 0 (PCMU) and 8 (PCMA).
    public func rtpMap(of payloadType: UInt8) -> RTPMap? {
        if let m = rtpMaps.first(where: { $0.payloadType == payloadType }) { return m }
        switch payloadType {
        case 0: return RTPMap(payloadType: 0, encodingName: "PCMU", clockRate: 8000, channels: nil)
        case 8: return RTPMap(payloadType: 8, encodingName: "PCMA", clockRate: 8000, channels: nil)
        case 9: return RTPMap(payloadType: 9, encodingName: "G722", clockRate: 8000, channels: nil)
        default: return nil
        }
    }
}

/// The media direction attributes (RFC 8866 §6.7, RFC 3264 §5.1).
public enum Direction: String, Sendable, Hashable, CaseIterable {
    case sendrecv, sendonly, recvonly, inactive

    /// The direction an answerer uses toward an offer with this direction (RFC 3264 §6.1),
    /// capped by what the answerer itself wants.
    public func answer(wanting local: Direction = .sendrecv) -> Direction {
        let offererSends = self == .sendrecv || self == .sendonly
        let offererReceives = self == .sendrecv || self == .recvonly
        let weSend = offererReceives && (local == .sendrecv || local == .sendonly)
        let weReceive = offererSends && (local == .sendrecv || local == .recvonly)
        switch (weSend, weReceive) {
        case (true, true): return .sendrecv
        case (true, false): return .sendonly
        case (false, true): return .recvonly
        case (false, false): return .inactive
        }
    }

    public var sends: Bool { self == .sendrecv || self == .sendonly }
    public var receives: Bool { self == .sendrecv || self == .recvonly }
}

/// `a=setup` roles (RFC 4145 §4): who starts the DTLS handshake (RFC 8842 §5).
public enum SetupRole: String, Sendable, Hashable {
    case active, passive, actpass, holdconn
}

/// `a=group:<semantics> <mid>…` (RFC 5888 §5).
public struct Group: Sendable, Hashable {
    public var semantics: String
    public var mids: [String]

    public init(semantics: String, mids: [String]) {
        self.semantics = semantics
        self.mids = mids
    }

    public init?(parsing value: String) {
        let f = value.split(separator: " ")
        guard let first = f.first else { return nil }
        self.init(semantics: String(first), mids: f.dropFirst().map(String.init))
    }

    public var value: String { ([semantics] + mids).joined(separator: " ") }
}

/// `a=fingerprint:<hash function> <XX:XX:…>` (RFC 8122 §5).
public struct Fingerprint: Sendable, Hashable {
    /// Lower-case hash function name: "sha-256", "sha-384", "sha-512", "sha-1".
    public var hashFunction: String
    public var bytes: [UInt8]

    public init(hashFunction: String, bytes: [UInt8]) {
        self.hashFunction = hashFunction.lowercased()
        self.bytes = bytes
    }

    public init?(parsing value: String) {
        let f = value.split(separator: " ")
        guard f.count == 2 else { return nil }
        let octets = f[1].split(separator: ":")
        guard !octets.isEmpty, octets.count <= 64 else { return nil }
        var bytes: [UInt8] = []
        for o in octets {
            guard o.count == 2, let b = UInt8(o, radix: 16) else { return nil }
            bytes.append(b)
        }
        self.init(hashFunction: String(f[0]), bytes: bytes)
    }

    /// Upper-case hex pairs joined by colons, as RFC 8122 writes them.
    public var value: String {
        hashFunction + " " + bytes.map { b in
            let s = String(b, radix: 16, uppercase: true)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: ":")
    }
}

/// `a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]` (RFC 8866 §6.6).
public struct RTPMap: Sendable, Hashable {
    public var payloadType: UInt8
    public var encodingName: String
    public var clockRate: UInt32
    public var channels: Int?

    public init(payloadType: UInt8, encodingName: String, clockRate: UInt32, channels: Int? = nil) {
        self.payloadType = payloadType
        self.encodingName = encodingName
        self.clockRate = clockRate
        self.channels = channels
    }

    public init?(parsing value: String) {
        let f = value.split(separator: " ", maxSplits: 1)
        guard f.count == 2, let pt = UInt8(f[0]), pt < 128 else { return nil }
        let parts = f[1].split(separator: "/")
        guard parts.count == 2 || parts.count == 3, let rate = UInt32(parts[1]) else { return nil }
        var channels: Int?
        if parts.count == 3 {
            guard let c = Int(parts[2]), c > 0, c < 256 else { return nil }
            channels = c
        }
        self.init(payloadType: pt, encodingName: String(parts[0]), clockRate: rate, channels: channels)
    }

    public var value: String { "\(payloadType) \(encodingName)/\(clockRate)" + (channels.map { "/\($0)" } ?? "") }

    /// Whether this is `name/rate` (encoding names compare case-insensitively, RFC 4855 §3).
    public func matches(_ name: String, clockRate rate: UInt32) -> Bool {
        encodingName.lowercased() == name.lowercased() && clockRate == rate
    }
}

/// `a=fmtp:<payload type> <parameters>` (RFC 8866 §6.15), with `key=value;…` parameters parsed.
public struct FormatParameters: Sendable, Hashable {
    public var payloadType: UInt8
    /// The text after the payload type.
    public var text: String

    public init(payloadType: UInt8, text: String) {
        self.payloadType = payloadType
        self.text = text
    }

    public init?(parsing value: String) {
        let f = value.split(separator: " ", maxSplits: 1)
        guard f.count == 2, let pt = UInt8(f[0]) else { return nil }
        self.init(payloadType: pt, text: String(f[1]))
    }

    /// `key=value` pairs separated by `;` (keys lower-cased; a bare token maps to "").
    public var parameters: [String: String] {
        var out: [String: String] = [:]
        for pair in text.split(separator: ";") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard let k = kv.first else { continue }
            out[k.trimmingSpaces.lowercased()] = kv.count == 2 ? String(kv[1].trimmingSpaces) : ""
        }
        return out
    }

    public var value: String { "\(payloadType) \(text)" }
}

/// `a=rtcp-fb:<payload type or *> <type> [<parameter>]` (RFC 4585 §4.2).
public struct RTCPFeedback: Sendable, Hashable {
    /// nil for `*` (all payload types).
    public var payloadType: UInt8?
    public var type: String
    public var parameter: String?

    public init(payloadType: UInt8?, type: String, parameter: String? = nil) {
        self.payloadType = payloadType
        self.type = type
        self.parameter = parameter
    }

    public init?(parsing value: String) {
        let f = value.split(separator: " ", maxSplits: 2)
        guard f.count >= 2 else { return nil }
        if f[0] == "*" { payloadType = nil } else if let pt = UInt8(f[0]) { payloadType = pt } else { return nil }
        type = String(f[1])
        parameter = f.count == 3 ? String(f[2]) : nil
    }

    public var value: String { "\(payloadType.map(String.init) ?? "*") \(type)" + (parameter.map { " \($0)" } ?? "") }
}

/// `a=ssrc:<ssrc> <attribute>[:<value>]` (RFC 5576 §4.1).
public struct SSRCAttribute: Sendable, Hashable {
    public var ssrc: UInt32
    public var name: String
    public var value: String?

    public init(ssrc: UInt32, name: String, value: String? = nil) {
        self.ssrc = ssrc
        self.name = name
        self.value = value
    }

    public init?(parsing text: String) {
        let f = text.split(separator: " ", maxSplits: 1)
        guard f.count == 2, let ssrc = UInt32(f[0]) else { return nil }
        let a = SessionDescription.parseAttribute(String(f[1]))
        self.init(ssrc: ssrc, name: a.name, value: a.value)
    }

    public var text: String { "\(ssrc) \(name)" + (value.map { ":\($0)" } ?? "") }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
