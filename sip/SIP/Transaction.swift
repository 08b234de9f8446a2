/// The timer values of RFC 3261 §17.1.1.1 and Table 4, in milliseconds.
public struct SIPTimerValues: Hashable, Sendable {
    /// Round-trip estimate (500 ms).
    public var t1: Int64
    /// Largest retransmission interval for non-INVITE requests and INVITE responses (4 s).
    public var t2: Int64
    /// How long a message may stay in the network (5 s).
    public var t4: Int64

    public init(t1: Int64 = 500, t2: Int64 = 4000, t4: Int64 = 5000) {
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
    }
}

/// The transaction timers (RFC 3261 §17, Table 4; L and M from RFC 6026 §8).
public enum SIPTransactionTimer: String, Hashable, Sendable {
    case a = "A", b = "B", d = "D", e = "E", f = "F", g = "G", h = "H", i = "I", j = "J", k = "K", l = "L", m = "M"
}

/// What a transaction asks of its runtime after an input: the runtime sends, hands
/// messages to the transaction user (TU), and keeps the timers.
public enum SIPTransactionAction: Hashable, Sendable {
    /// Send this message to the transport (a request, its retransmission, an ACK, a response).
    case send(SIPMessage)
    /// Hand this message to the TU: a response (client side) or the request (server side).
    case deliver(SIPMessage)
    /// Start (or restart) a timer to fire after this many milliseconds.
    case start(SIPTransactionTimer, milliseconds: Int64)
    case cancel(SIPTransactionTimer)
    /// No final response came in time (Timer B, F or H): the TU acts as on a 408.
    case timedOut
    /// The transaction is over; forget it.
    case terminated
}

/// How transactions are told apart (RFC 3261 §17.1.3, §17.2.3): the top Via's branch and
/// sent-by, and the method, with ACK and CANCEL kept apart from the INVITE they belong to
/// (a CANCEL is a transaction of its own; an ACK for a non-2xx matches the INVITE server transaction).
public struct SIPTransactionKey: Hashable, Sendable {
    public var branch: String
    public var sentBy: String
    public var method: SIPMethod

    public init?(_ message: SIPMessage) {
        guard let via = message.vias.first, let branch = via.branch, branch.hasPrefix("z9hG4bK"), var method = message.method else { return nil }
        if method == .ack { method = .invite }
        self.branch = branch
        self.sentBy = HostPort.format(host: via.host.lowercased(), port: via.port)
        self.method = method
    }
}

/// How a client transaction begins (RFC 3261 §17.1.1.2, §17.1.2.2): the request out, its
/// retransmission timer (T1) over an unreliable transport, its timeout timer (64·T1).
func clientTransactionStart(_ request: SIPMessage, reliable: Bool, retransmit: SIPTransactionTimer, timeout: SIPTransactionTimer,
                            timers: SIPTimerValues) -> [SIPTransactionAction] {
    [.send(request)] + (reliable ? [] : [.start(retransmit, milliseconds: timers.t1)]) + [.start(timeout, milliseconds: 64 * timers.t1)]
}

/// An INVITE client transaction (RFC 3261 §17.1.1, with RFC 6026's Accepted state): a
/// value type driven by ``start()``, ``receive(_:)`` and ``fire(_:)``; each returns the
/// actions for the runtime. Over an unreliable transport it retransmits on Timer A;
/// Timer B ends a transaction no response reached; a non-2xx final is answered with the
/// ACK of §17.1.1.3.
public struct InviteClientTransaction: Hashable, Sendable {
    public enum State: Hashable, Sendable { case calling, proceeding, completed, accepted, terminated }

    public let request: SIPMessage
    public let reliable: Bool
    public let timers: SIPTimerValues
    public private(set) var state: State = .calling
    private var intervalA: Int64
    private var ack: SIPMessage?

    public init(request: SIPMessage, reliable: Bool, timers: SIPTimerValues = SIPTimerValues()) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
        intervalA = timers.t1
    }

    public func start() -> [SIPTransactionAction] {
        clientTransactionStart(request, reliable: reliable, retransmit: .a, timeout: .b, timers: timers)
    }

    public mutating func receive(_ response: SIPMessage) -> [SIPTransactionAction] {
        guard let code = response.statusCode else { return [] }
        // Leaving Calling stops the retransmissions (A) and the no-answer timer (B).
        let leavingCalling: [SIPTransactionAction] = state == .calling ? (reliable ? [] : [.cancel(.a)]) + [.cancel(.b)] : []
        switch (state, code) {
        case (.calling, 100...199), (.proceeding, 100...199):
            state = .proceeding
            return leavingCalling + [.deliver(response)]
        case (.calling, 200...299), (.proceeding, 200...299):
            // The TU (the dialog) sends the ACK of a 2xx; retransmitted 2xx keep reaching it.
            state = .accepted
            return leavingCalling + [.deliver(response), .start(.m, milliseconds: 64 * timers.t1)]
        case (.calling, 300...699), (.proceeding, 300...699):
            state = .completed
            let ack = Self.ack(for: request, response: response)
            self.ack = ack
            return leavingCalling + [.deliver(response), .send(ack), .start(.d, milliseconds: reliable ? 0 : 32_000)]
        case (.completed, 300...699):
            return ack.map { [.send($0)] } ?? []  // a retransmitted final: ACK again, the TU already has it
        case (.accepted, 200...299):
            return [.deliver(response)]
        default:
            return []
        }
    }

    public mutating func fire(_ timer: SIPTransactionTimer) -> [SIPTransactionAction] {
        switch (state, timer) {
        case (.calling, .a):
            intervalA *= 2
            return [.send(request), .start(.a, milliseconds: intervalA)]
        case (.calling, .b):
            state = .terminated
            return [.cancel(.a), .timedOut, .terminated]
        case (.completed, .d), (.accepted, .m):
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }

    /// The transport failed to send: the TU learns it as a timeout (RFC 3261 §17.1.4).
    public mutating func transportError() -> [SIPTransactionAction] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.timedOut, .terminated]
    }

    /// The ACK for a non-2xx final response (RFC 3261 §17.1.1.3): the request's Request-URI,
    /// Call-ID, From, top Via and Route, the response's To (with its tag), CSeq with ACK.
    public static func ack(for request: SIPMessage, response: SIPMessage) -> SIPMessage {
        guard case .request(_, let uri) = request.startLine else { return request }
        var ack = SIPMessage(startLine: .request(method: .ack, requestURI: uri))
        if let via = request.headers.values("Via").first { ack.headers.append("Via", via) }
        if let maxForwards = request.headers.first("Max-Forwards") { ack.headers.append("Max-Forwards", maxForwards) }
        for name in ["From", "Call-ID"] { if let value = request.headers.first(name) { ack.headers.append(name, value) } }
        if let to = response.headers.first("To") ?? request.headers.first("To") { ack.headers.append("To", to) }
        if let cseq = request.cseq { ack.headers.append("CSeq", CSeq(sequence: cseq.sequence, method: .ack).serialized) }
        for route in request.headers.values("Route") { ack.headers.append("Route", route) }
        return ack
    }
}

extension SIPMessage {
    /// The CANCEL of this INVITE (RFC 3261 §9.1): the same Request-URI, Call-ID, From, To,
    /// top Via (so it reaches the same server transaction's branch) and Route, and CSeq's
    /// number with the method CANCEL.
    public func cancelRequest() -> SIPMessage? {
        guard case .request(.invite, let uri) = startLine, let cseq else { return nil }
        var cancel = SIPMessage(startLine: .request(method: .cancel, requestURI: uri))
        if let via = headers.values("Via").first { cancel.headers.append("Via", via) }
        cancel.headers.append("Max-Forwards", "70")
        for name in ["From", "To", "Call-ID"] { if let value = headers.first(name) { cancel.headers.append(name, value) } }
        cancel.headers.append("CSeq", CSeq(sequence: cseq.sequence, method: .cancel).serialized)
        for route in headers.values("Route") { cancel.headers.append("Route", route) }
        return cancel
    }
}

/// A non-INVITE client transaction (RFC 3261 §17.1.2): REGISTER, BYE, OPTIONS, CANCEL, …
/// Timer E retransmits (doubling to T2, then every T2 once a provisional came), Timer F
/// ends it without a final response, Timer K absorbs retransmitted finals.
public struct NonInviteClientTransaction: Hashable, Sendable {
    public enum State: Hashable, Sendable { case trying, proceeding, completed, terminated }

    public let request: SIPMessage
    public let reliable: Bool
    public let timers: SIPTimerValues
    public private(set) var state: State = .trying
    private var intervalE: Int64

    public init(request: SIPMessage, reliable: Bool, timers: SIPTimerValues = SIPTimerValues()) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
        intervalE = timers.t1
    }

    public func start() -> [SIPTransactionAction] {
        clientTransactionStart(request, reliable: reliable, retransmit: .e, timeout: .f, timers: timers)
    }

    public mutating func receive(_ response: SIPMessage) -> [SIPTransactionAction] {
        guard let code = response.statusCode else { return [] }
        switch (state, code) {
        case (.trying, 100...199), (.proceeding, 100...199):
            state = .proceeding
            return [.deliver(response)]
        case (.trying, 200...699), (.proceeding, 200...699):
            state = .completed
            return (reliable ? [] : [.cancel(.e)]) + [.cancel(.f), .deliver(response), .start(.k, milliseconds: reliable ? 0 : timers.t4)]
        default:
            return []  // finals retransmitted into Completed are absorbed
        }
    }

    public mutating func fire(_ timer: SIPTransactionTimer) -> [SIPTransactionAction] {
        switch (state, timer) {
        case (.trying, .e):
            intervalE = min(2 * intervalE, timers.t2)
            return [.send(request), .start(.e, milliseconds: intervalE)]
        case (.proceeding, .e):
            intervalE = timers.t2
            return [.send(request), .start(.e, milliseconds: intervalE)]
        case (.trying, .f), (.proceeding, .f):
            state = .terminated
            return [.cancel(.e), .timedOut, .terminated]
        case (.completed, .k):
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }

    public mutating func transportError() -> [SIPTransactionAction] {
        guard state != .terminated else { return [] }
        state = .terminated
        return [.timedOut, .terminated]
    }
}

/// An INVITE server transaction (RFC 3261 §17.2.1, with RFC 6026's Accepted state). It
/// answers `100 Trying` at once, repeats its last response to a retransmitted INVITE,
/// retransmits a non-2xx final on Timer G until the ACK (Timer H gives up), and in Accepted
/// lets the TU retransmit its 2xx until Timer L.
public struct InviteServerTransaction: Hashable, Sendable {
    public enum State: Hashable, Sendable { case proceeding, completed, confirmed, accepted, terminated }

    public let request: SIPMessage
    public let reliable: Bool
    public let timers: SIPTimerValues
    public private(set) var state: State = .proceeding
    private var lastResponse: SIPMessage
    private var intervalG: Int64

    public init(request: SIPMessage, reliable: Bool, timers: SIPTimerValues = SIPTimerValues()) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
        lastResponse = request.response(statusCode: 100, reasonPhrase: "Trying")
        intervalG = timers.t1
    }

    /// The INVITE arrived: 100 Trying out, the request to the TU.
    public func start() -> [SIPTransactionAction] {
        [.send(lastResponse), .deliver(request)]
    }

    /// The TU's response to the request.
    public mutating func respond(_ response: SIPMessage) -> [SIPTransactionAction] {
        guard let code = response.statusCode else { return [] }
        switch (state, code) {
        case (.proceeding, 100...199):
            lastResponse = response
            return [.send(response)]
        case (.proceeding, 200...299):
            state = .accepted
            lastResponse = response
            return [.send(response), .start(.l, milliseconds: 64 * timers.t1)]
        case (.accepted, 200...299):
            return [.send(response)]  // the TU's own 2xx retransmissions (RFC 6026 §8.7)
        case (.proceeding, 300...699):
            state = .completed
            lastResponse = response
            return [.send(response)] + (reliable ? [] : [.start(.g, milliseconds: intervalG)]) + [.start(.h, milliseconds: 64 * timers.t1)]
        default:
            return []
        }
    }

    /// A request of this transaction came again: the INVITE retransmitted, or the ACK.
    public mutating func receive(_ message: SIPMessage) -> [SIPTransactionAction] {
        switch (state, message.method) {
        case (.proceeding, .invite?), (.completed, .invite?):
            return [.send(lastResponse)]
        case (.completed, .ack?):
            state = .confirmed
            return (reliable ? [] : [.cancel(.g)]) + [.cancel(.h), .start(.i, milliseconds: reliable ? 0 : timers.t4)]
        default:
            return []  // Accepted absorbs INVITE retransmissions; an ACK for a 2xx is the dialog's
        }
    }

    public mutating func fire(_ timer: SIPTransactionTimer) -> [SIPTransactionAction] {
        switch (state, timer) {
        case (.completed, .g):
            intervalG = min(2 * intervalG, timers.t2)
            return [.send(lastResponse), .start(.g, milliseconds: intervalG)]
        case (.completed, .h):
            state = .terminated
            return [.cancel(.g), .timedOut, .terminated]
        case (.confirmed, .i), (.accepted, .l):
            state = .terminated
            return [.terminated]
        default:
            return []
        }
    }
}

/// A non-INVITE server transaction (RFC 3261 §17.2.2): the request to the TU, its last
/// provisional or final repeated to retransmissions, Timer J before it is forgotten.
public struct NonInviteServerTransaction: Hashable, Sendable {
    public enum State: Hashable, Sendable { case trying, proceeding, completed, terminated }

    public let request: SIPMessage
    public let reliable: Bool
    public let timers: SIPTimerValues
    public private(set) var state: State = .trying
    private var lastResponse: SIPMessage?

    public init(request: SIPMessage, reliable: Bool, timers: SIPTimerValues = SIPTimerValues()) {
        self.request = request
        self.reliable = reliable
        self.timers = timers
    }

    public func start() -> [SIPTransactionAction] { [.deliver(request)] }

    public mutating func respond(_ response: SIPMessage) -> [SIPTransactionAction] {
        guard let code = response.statusCode, state == .trying || state == .proceeding else { return [] }
        lastResponse = response
        if code < 200 {
            state = .proceeding
            return [.send(response)]
        }
        state = .completed
        return [.send(response), .start(.j, milliseconds: reliable ? 0 : 64 * timers.t1)]
    }

    /// The request came again.
    public mutating func receive(_ request: SIPMessage) -> [SIPTransactionAction] {
        guard state == .proceeding || state == .completed, let lastResponse else { return [] }
        return [.send(lastResponse)]
    }

    public mutating func fire(_ timer: SIPTransactionTimer) -> [SIPTransactionAction] {
        guard state == .completed, timer == .j else { return [] }
        state = .terminated
        return [.terminated]
    }
}
