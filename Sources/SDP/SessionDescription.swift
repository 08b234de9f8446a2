/// SDP, the Session Description Protocol (RFC 8866): a pure parser and serializer over
/// text, with typed access to the attributes WebRTC and SIP offer/answer use (RFC 8829
/// JSEP, RFC 8839 ICE, RFC 8842 DTLS, RFC 8843 BUNDLE, RFC 8858/5761 rtcp-mux, RFC 3264).
///
/// Every line is kept, in order, so a description serializes back as it came (CRLF line
/// ends). Input is untrusted: sizes and counts are bounded and every malformed line is a
/// typed ``SDPError`` with its line number. Offer/answer decisions live in the modules
/// that use it (`WebRTC` for the browser leg, `Gateway` for the SIP leg).
public struct SessionDescription: Sendable, Hashable {
    /// `v=` (always 0).
    public var version: Int = 0
    public var origin: Origin
    /// `s=`; "-" when there is none.
    public var sessionName: String = "-"
    /// Session-level lines this type has no field for (`i=`, `u=`, `e=`, `p=`, `b=`, `r=`, `z=`, `k=`), in order.
    public var otherLines: [Line] = []
    /// Session-level `c=`.
    public var connection: Connection?
    /// `t=` start and stop (0 0: unbounded).
    public var timing: Timing = Timing(start: 0, stop: 0)
    public var attributes: [Attribute] = []
    public var media: [MediaDescription] = []

    public init(origin: Origin, sessionName: String = "-", connection: Connection? = nil, attributes: [Attribute] = [], media: [MediaDescription] = []) {
        self.origin = origin
        self.sessionName = sessionName
        self.connection = connection
        self.attributes = attributes
        self.media = media
    }

    /// A line kept verbatim: its type letter and value.
    public struct Line: Sendable, Hashable {
        public var type: Character
        public var value: String
        public init(type: Character, value: String) {
            self.type = type
            self.value = value
        }
    }

    /// `o=` (RFC 8866 §5.2).
    public struct Origin: Sendable, Hashable {
        public var username: String
        public var sessionID: String
        public var sessionVersion: UInt64
        public var networkType: String
        public var addressType: String
        public var address: String

        public init(username: String = "-", sessionID: String, sessionVersion: UInt64, networkType: String = "IN", addressType: String = "IP4", address: String = "127.0.0.1") {
            self.username = username
            self.sessionID = sessionID
            self.sessionVersion = sessionVersion
            self.networkType = networkType
            self.addressType = addressType
            self.address = address
        }
    }

    /// `c=` (RFC 8866 §5.7): network type, address type and address (TTL/count suffixes kept in the address).
    public struct Connection: Sendable, Hashable {
        public var networkType: String
        public var addressType: String
        public var address: String

        public init(networkType: String = "IN", addressType: String = "IP4", address: String) {
            self.networkType = networkType
            self.addressType = addressType
            self.address = address
        }
    }

    /// `t=` (RFC 8866 §5.9).
    public struct Timing: Sendable, Hashable {
        public var start: UInt64
        public var stop: UInt64
        public init(start: UInt64, stop: UInt64) {
            self.start = start
            self.stop = stop
        }
    }
}

/// `a=` (RFC 8866 §5.13): a property attribute (`a=rtcp-mux`) has no value, a value
/// attribute (`a=mid:0`) has one.
public struct Attribute: Sendable, Hashable {
    public var name: String
    public var value: String?

    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }
}

/// One `m=` section and its lines (RFC 8866 §5.14).
public struct MediaDescription: Sendable, Hashable {
    /// "audio", "video", "application", …
    public var media: String
    public var port: UInt16
    /// The `/<number of ports>` suffix, when present.
    public var numberOfPorts: Int?
    /// "UDP/TLS/RTP/SAVPF", "RTP/AVP", …
    public var proto: String
    /// Payload types (as text; RTP profiles use numbers) or other format names.
    public var formats: [String]
    /// Media-level lines this type has no field for (`i=`, `b=`, `k=`), in order.
    public var otherLines: [SessionDescription.Line] = []
    public var connection: SessionDescription.Connection?
    public var attributes: [Attribute] = []

    public init(media: String, port: UInt16, proto: String, formats: [String], connection: SessionDescription.Connection? = nil, attributes: [Attribute] = []) {
        self.media = media
        self.port = port
        self.proto = proto
        self.formats = formats
        self.connection = connection
        self.attributes = attributes
    }
}

/// Why a description was refused, with the 1-based line number where it applies.
public enum SDPError: Error, Sendable, Equatable, CustomStringConvertible {
    case tooLarge(limit: Int)
    case tooManyLines(limit: Int)
    case tooManyMediaSections(limit: Int)
    case lineTooLong(line: Int)
    case malformedLine(line: Int, reason: String)
    case missingLine(type: Character)
    case unexpectedLine(line: Int, type: Character)

    public var description: String {
        switch self {
        case .tooLarge(let limit): "SDP larger than \(limit) bytes"
        case .tooManyLines(let limit): "SDP has more than \(limit) lines"
        case .tooManyMediaSections(let limit): "SDP has more than \(limit) media sections"
        case .lineTooLong(let line): "SDP line \(line) is too long"
        case .malformedLine(let line, let reason): "SDP line \(line): \(reason)"
        case .missingLine(let type): "SDP has no \(type)= line"
        case .unexpectedLine(let line, let type): "SDP line \(line): \(type)= is not allowed here"
        }
    }
}
