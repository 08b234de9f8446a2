import Foundation

/// Why a signalling frame was refused; `code` is the protocol's error code
/// (docs/webkit-signalling.md).
public struct SignallingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var message: String
    public var call: String?

    public init(_ code: String, _ message: String, call: String? = nil) {
        self.code = code
        self.message = message
        self.call = call
    }

    public var description: String { "\(code): \(message)" }
}

/// A frame from the browser on `/webkit/ws`, version 1.
public enum BrowserMessage: Sendable, Equatable {
    case call(call: String, to: String?, sdp: String)
    case answer(call: String, sdp: String)
    case hangup(call: String, code: Int?)
    case dtmf(call: String, digits: String)
    case hold(call: String)
    case resume(call: String)
    case renegotiate(call: String, sdp: String)
    case ping(time: Double?)

    /// Largest frame taken.
    public static let maximumBytes = 65_536
    static let maximumCallID = 64
    static let dtmfDigits = Set("0123456789*#ABCDabcd")

    private struct Frame: Decodable {
        var type: String
        var call: String?
        var to: String?
        var sdp: String?
        var code: Int?
        var digits: String?
        var time: Double?
    }

    /// Parses one text frame: bounded size, every field checked.
    public static func parse(_ text: String) throws(SignallingError) -> BrowserMessage {
        guard text.utf8.count <= maximumBytes else { throw SignallingError("bad-message", "frame larger than \(maximumBytes) bytes") }
        let frame: Frame
        do { frame = try JSONDecoder().decode(Frame.self, from: Data(text.utf8)) } catch {
            throw SignallingError("bad-message", "not a JSON object with a string \"type\"")
        }
        func callID() throws(SignallingError) -> String {
            guard let c = frame.call, !c.isEmpty, c.utf8.count <= maximumCallID else {
                throw SignallingError("bad-message", "\(frame.type) needs \"call\" (1–\(maximumCallID) characters)")
            }
            return c
        }
        func sdp(_ call: String) throws(SignallingError) -> String {
            guard let s = frame.sdp, !s.isEmpty else { throw SignallingError("bad-message", "\(frame.type) needs \"sdp\"", call: call) }
            return s
        }
        switch frame.type {
        case "call":
            let c = try callID()
            if let to = frame.to, to.isEmpty || to.utf8.count > 128 { throw SignallingError("bad-message", "\"to\" must be 1–128 characters", call: c) }
            return .call(call: c, to: frame.to, sdp: try sdp(c))
        case "answer":
            let c = try callID()
            return .answer(call: c, sdp: try sdp(c))
        case "renegotiate":
            let c = try callID()
            return .renegotiate(call: c, sdp: try sdp(c))
        case "hangup":
            let c = try callID()
            if let code = frame.code, !(400...699).contains(code) { throw SignallingError("bad-message", "hangup code must be 400–699", call: c) }
            return .hangup(call: c, code: frame.code)
        case "dtmf":
            let c = try callID()
            guard let d = frame.digits, !d.isEmpty, d.count <= 32, d.allSatisfy(dtmfDigits.contains) else {
                throw SignallingError("bad-message", "dtmf needs \"digits\": 1–32 of 0-9 * # A-D", call: c)
            }
            return .dtmf(call: c, digits: d.uppercased())
        case "hold": return .hold(call: try callID())
        case "resume": return .resume(call: try callID())
        case "ping": return .ping(time: frame.time)
        default: throw SignallingError("unknown-type", "unknown message type \"\(frame.type.prefix(32))\"")
        }
    }
}

/// A frame from Tandem to the browser on `/webkit/ws`, version 1.
public enum GatewayMessage: Sendable, Equatable {
    case welcome(session: String, extension: String?, guest: Bool, heartbeat: Int)
    case registration(state: String, reason: String?)
    case incoming(call: String, from: String, display: String?, sdp: String)
    case answer(call: String, sdp: String)
    case progress(call: String, code: Int, early: Bool)
    case answered(call: String)
    case held(call: String, local: Bool, remote: Bool)
    case dtmf(call: String, digit: String)
    case ended(call: String, code: Int?, reason: String)
    case pong(time: Double?)
    case error(SignallingError)

    public static let version = 1

    private struct Frame: Encodable {
        var type: String
        var version: Int?
        var session: String?
        var `extension`: String?
        var guest: Bool?
        var heartbeat: Int?
        var state: String?
        var reason: String?
        var call: String?
        var from: String?
        var display: String?
        var sdp: String?
        var code: Int?
        var early: Bool?
        var local: Bool?
        var remote: Bool?
        var digit: String?
        var time: Double?
        var message: String?
        var errorCode: String?

        enum CodingKeys: String, CodingKey {
            case type, version, session, `extension`, guest, heartbeat, state, reason, call, from, display, sdp, code, early, local, remote, digit, time, message
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(type, forKey: .type)
            try c.encodeIfPresent(version, forKey: .version)
            try c.encodeIfPresent(session, forKey: .session)
            if type == "welcome" { try c.encode(`extension`, forKey: .extension) }
            try c.encodeIfPresent(guest, forKey: .guest)
            try c.encodeIfPresent(heartbeat, forKey: .heartbeat)
            try c.encodeIfPresent(state, forKey: .state)
            try c.encodeIfPresent(reason, forKey: .reason)
            try c.encodeIfPresent(call, forKey: .call)
            try c.encodeIfPresent(from, forKey: .from)
            try c.encodeIfPresent(display, forKey: .display)
            try c.encodeIfPresent(sdp, forKey: .sdp)
            if let errorCode { try c.encode(errorCode, forKey: .code) } else if type == "ended" { try c.encode(code, forKey: .code) } else { try c.encodeIfPresent(code, forKey: .code) }
            try c.encodeIfPresent(early, forKey: .early)
            try c.encodeIfPresent(local, forKey: .local)
            try c.encodeIfPresent(remote, forKey: .remote)
            try c.encodeIfPresent(digit, forKey: .digit)
            try c.encodeIfPresent(time, forKey: .time)
            try c.encodeIfPresent(message, forKey: .message)
        }
    }

    private var frame: Frame {
        var f = Frame(type: "")
        switch self {
        case .welcome(let session, let ext, let guest, let heartbeat):
            f.type = "welcome"; f.version = Self.version; f.session = session; f.extension = ext; f.guest = guest; f.heartbeat = heartbeat
        case .registration(let state, let reason): f.type = "registration"; f.state = state; f.reason = reason
        case .incoming(let call, let from, let display, let sdp): f.type = "incoming"; f.call = call; f.from = from; f.display = display; f.sdp = sdp
        case .answer(let call, let sdp): f.type = "answer"; f.call = call; f.sdp = sdp
        case .progress(let call, let code, let early): f.type = "progress"; f.call = call; f.code = code; f.early = early
        case .answered(let call): f.type = "answered"; f.call = call
        case .held(let call, let local, let remote): f.type = "held"; f.call = call; f.local = local; f.remote = remote
        case .dtmf(let call, let digit): f.type = "dtmf"; f.call = call; f.digit = digit
        case .ended(let call, let code, let reason): f.type = "ended"; f.call = call; f.code = code; f.reason = reason
        case .pong(let time): f.type = "pong"; f.time = time
        case .error(let e): f.type = "error"; f.errorCode = e.code; f.message = e.message; f.call = e.call
        }
        return f
    }

    /// The frame's JSON text.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(frame)).flatMap { String(data: $0, encoding: .utf8) } ?? #"{"type":"error","code":"internal","message":"unencodable"}"#
    }
}
