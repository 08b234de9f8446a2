import SDP

/// The state machine of one bridged call: a browser leg (signalling + WebRTC media) and a
/// SIP leg (dialog + RTP), as a value. Events from either side go in; what the controller
/// must do comes out (RFC 3261 §15 for the SIP teardown: CANCEL before a final response,
/// BYE after, a final error response to an INVITE not yet answered). Knows no sockets.
public struct BridgedCallState: Sendable, Equatable {
    public enum Direction: String, Sendable { case incoming, outgoing }

    public enum Phase: String, Sendable, Equatable {
        /// Outgoing: the INVITE is out. Incoming: the browser has the offer, SIP was sent 180.
        case calling
        /// Outgoing: a provisional with a session description came (early media).
        case early
        /// Incoming: the browser answered; its media leg is starting.
        case answering
        case confirmed
        case ended
    }

    public enum Event: Sendable, Equatable {
        case sipProgress(code: Int, earlyMedia: Bool)
        case sipAnswered
        case sipEnded(code: Int?, reason: String)
        case browserAnswered
        case mediaStarted
        case mediaFailed(reason: String)
        /// The browser's WebRTC leg ended by itself (consent expired, DTLS failed).
        case mediaEnded(reason: String)
        case browserHangup(code: Int?)
        /// The signalling socket closed.
        case browserGone
        /// Tandem is going away (a restart past its drain timeout): BYE, or 503 to an unanswered incoming call.
        case serviceEnding(reason: String)
        case hold
        case resume
    }

    public enum Action: Sendable, Equatable {
        case toBrowser(GatewayMessage)
        /// CANCEL or BYE, whichever the dialog's state calls for.
        case hangUpSIP
        case rejectSIP(code: Int, reason: String)
        case acceptSIP
        case endMedia
        /// A re-INVITE with this direction (hold: sendonly, resume: sendrecv).
        case reinviteSIP(SDP.Direction)
    }

    public let call: String
    public let direction: Direction
    public private(set) var phase: Phase = .calling
    public private(set) var held = false

    public init(call: String, direction: Direction) {
        self.call = call
        self.direction = direction
    }

    public var isEnded: Bool { phase == .ended }

    /// Feeds one event; returns what to do, in order.
    public mutating func handle(_ event: Event) -> [Action] {
        guard phase != .ended else { return [] }
        switch event {
        case .sipProgress(let code, let earlyMedia):
            guard direction == .outgoing, phase == .calling || phase == .early else { return [] }
            if earlyMedia { phase = .early }
            return [.toBrowser(.progress(call: call, code: code, early: earlyMedia))]
        case .sipAnswered:
            guard direction == .outgoing, phase == .calling || phase == .early else { return [] }
            phase = .confirmed
            return [.toBrowser(.answered(call: call))]
        case .browserAnswered:
            guard direction == .incoming, phase == .calling else { return [] }
            phase = .answering
            return []
        case .mediaStarted:
            guard direction == .incoming, phase == .answering else { return [] }
            phase = .confirmed
            return [.acceptSIP, .toBrowser(.answered(call: call))]
        case .mediaFailed(let reason):
            let sip: Action = direction == .incoming && phase != .confirmed ? .rejectSIP(code: 488, reason: "Not Acceptable Here") : .hangUpSIP
            return end([sip, .endMedia], code: nil, reason: reason)
        case .sipEnded(let code, let reason):
            return end([.endMedia], code: code, reason: reason)
        case .mediaEnded(let reason):
            let sip: Action = direction == .incoming && phase != .confirmed ? .rejectSIP(code: 480, reason: "Temporarily Unavailable") : .hangUpSIP
            return end([sip], code: nil, reason: reason)
        case .browserHangup(let code):
            let sip: Action = direction == .incoming && phase == .calling ? .rejectSIP(code: code ?? 486, reason: Self.reason(code ?? 486)) : .hangUpSIP
            return end([sip, .endMedia], code: nil, reason: "hung up by the browser")
        case .browserGone:
            let sip: Action = direction == .incoming && phase != .confirmed ? .rejectSIP(code: 480, reason: "Temporarily Unavailable") : .hangUpSIP
            return end([sip, .endMedia], code: nil, reason: "browser disconnected")
        case .serviceEnding(let reason):
            let sip: Action = direction == .incoming && phase != .confirmed ? .rejectSIP(code: 503, reason: "Service Unavailable") : .hangUpSIP
            return end([sip, .endMedia], code: nil, reason: reason)
        case .hold, .resume:
            let hold = event == .hold
            guard phase == .confirmed, held != hold else { return [] }
            held = hold
            return [.reinviteSIP(hold ? .sendonly : .sendrecv), .toBrowser(.held(call: call, local: hold, remote: false))]
        }
    }

    private mutating func end(_ actions: [Action], code: Int?, reason: String) -> [Action] {
        phase = .ended
        return actions + [.toBrowser(.ended(call: call, code: code, reason: reason))]
    }

    static func reason(_ code: Int) -> String {
        switch code {
        case 486: "Busy Here"
        case 480: "Temporarily Unavailable"
        case 603: "Decline"
        case 487: "Request Terminated"
        default: "Rejected"
        }
    }
}
