/// A SIP or SIPS URI (RFC 3261 §19.1): user, host, port and URI parameters (`transport`,
/// `lr`, …). Headers after `?` are kept in `headers` as text.
public struct SIPURI: Hashable, Sendable, CustomStringConvertible {
    public var secure: Bool
    public var user: String?
    public var host: String
    public var port: Int?
    public var parameters: [(name: String, value: String)]
    public var headers: String?

    public init(secure: Bool = false, user: String?, host: String, port: Int? = nil, parameters: [(name: String, value: String)] = []) {
        self.secure = secure
        self.user = user
        self.host = host
        self.port = port
        self.parameters = parameters
    }

    /// Parses `sip:user@host:port;params?headers`; nil for other schemes or a bad host.
    public init?(_ text: String) {
        let lower = text.prefix(5).lowercased()
        if lower.hasPrefix("sips:") {
            secure = true
        } else if lower.hasPrefix("sip:") {
            secure = false
        } else {
            return nil
        }
        var rest = Substring(text.dropFirst(secure ? 5 : 4))
        if let q = rest.firstIndex(of: "?") {
            headers = String(rest[rest.index(after: q)...])
            rest = rest[..<q]
        }
        if let at = rest.lastIndex(of: "@") {
            user = String(rest[..<at])
            rest = rest[rest.index(after: at)...]
        }
        let pieces = rest.split(separator: ";", omittingEmptySubsequences: false)
        guard let hostPort = pieces.first, let (host, port) = HostPort.parse(hostPort) else { return nil }
        self.host = host
        self.port = port
        parameters = pieces.dropFirst().map { piece in
            let pair = piece.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(pair[0]).lowercased(), pair.count > 1 ? String(pair[1]) : "")
        }
    }

    public func parameter(_ name: String) -> String? { parameters.first { $0.name == name }?.value }
    /// Loose routing (RFC 3261 §16.12): the URI carries `lr`.
    public var isLooseRouter: Bool { parameter("lr") != nil }
    /// The host without IPv6 brackets.
    public var bareHost: String { HostPort.bare(host) }

    public var description: String {
        var text = (secure ? "sips:" : "sip:") + (user.map { "\($0)@" } ?? "") + HostPort.format(host: host, port: port)
        for p in parameters { text += p.value.isEmpty ? ";\(p.name)" : ";\(p.name)=\(p.value)" }
        if let headers { text += "?" + headers }
        return text
    }

    public static func == (a: SIPURI, b: SIPURI) -> Bool { a.description == b.description }
    public func hash(into hasher: inout Hasher) { hasher.combine(description) }
}

/// How a dialog is told apart (RFC 3261 §12): Call-ID and both tags, ours first.
public struct SIPDialogID: Hashable, Sendable, CustomStringConvertible {
    public var callID: String
    public var localTag: String
    public var remoteTag: String

    public init(callID: String, localTag: String, remoteTag: String) {
        self.callID = callID
        self.localTag = localTag
        self.remoteTag = remoteTag
    }

    /// The dialog an incoming in-dialog request belongs to: its To tag is ours.
    public init?(incoming request: SIPMessage) {
        guard let callID = request.callID, let local = request.to?.tag, let remote = request.from?.tag else { return nil }
        self.init(callID: callID, localTag: local, remoteTag: remote)
    }

    /// The dialog a response to our request creates or belongs to: its From tag is ours.
    public init?(response: SIPMessage) {
        guard let callID = response.callID, let local = response.from?.tag, let remote = response.to?.tag else { return nil }
        self.init(callID: callID, localTag: local, remoteTag: remote)
    }

    public var description: String { "\(callID);\(localTag);\(remoteTag)" }
}

/// A dialog's state (RFC 3261 §12): the peer's target and route set, both CSeq spaces, and the
/// URIs of both ends. Built by the UAC from a response with a To tag (§12.1.2), or by the UAS
/// from the INVITE (§12.1.1); builds in-dialog requests (§12.2.1.1) and checks the order of
/// incoming ones (§12.2.2).
public struct SIPDialog: Hashable, Sendable {
    public enum State: Hashable, Sendable { case early, confirmed, terminated }

    public let id: SIPDialogID
    public var state: State
    /// `From` of our requests (with our tag), `To` of the peer's.
    public let localParty: String
    public let remoteParty: String
    /// Where requests go: the peer's Contact, updated by target refreshes (re-INVITE, UPDATE).
    public var remoteTarget: String
    /// Route headers of our requests, in order.
    public var routeSet: [String]
    public private(set) var localSequence: UInt32
    public private(set) var remoteSequence: UInt32?
    /// Our Contact in this dialog.
    public let localContact: String

    /// The UAC's dialog from a 1xx (with a To tag: early) or 2xx (confirmed) to `request`.
    public init?(uac request: SIPMessage, response: SIPMessage, localContact: String) {
        guard let code = response.statusCode, (101...299).contains(code), let id = SIPDialogID(response: response),
              let from = request.headers.first("From"), let to = response.headers.first("To"), let cseq = request.cseq else { return nil }
        self.id = id
        state = code >= 200 ? .confirmed : .early
        localParty = from
        remoteParty = to
        remoteTarget = response.contacts.first?.uri ?? request.requestURI ?? ""
        routeSet = response.headers.values("Record-Route").reversed()
        localSequence = cseq.sequence
        remoteSequence = nil
        self.localContact = localContact
    }

    /// The UAS's dialog for `request` (INVITE), with the To tag it answers with.
    public init?(uas request: SIPMessage, localTag: String, localContact: String) {
        guard let callID = request.callID, let fromTag = request.from?.tag, let from = request.headers.first("From"),
              let to = request.headers.first("To"), let cseq = request.cseq else { return nil }
        id = SIPDialogID(callID: callID, localTag: localTag, remoteTag: fromTag)
        state = .early
        localParty = request.to?.tag == nil ? to + ";tag=\(localTag)" : to
        remoteParty = from
        remoteTarget = request.contacts.first?.uri ?? ""
        routeSet = request.headers.values("Record-Route")
        localSequence = UInt32.random(in: 1...0x7FFF_FFFF) & 0x0FFF_FFFF
        remoteSequence = cseq.sequence
        self.localContact = localContact
    }

    /// A new in-dialog request (§12.2.1.1): the remote target as Request-URI with the route
    /// set as Route (loose routing), or the first route as Request-URI and the target last
    /// (strict routing, §16.12.1.2); the next local CSeq except for ACK and CANCEL.
    public mutating func request(_ method: SIPMethod, via: String, cseq explicit: UInt32? = nil) -> SIPMessage {
        let sequence: UInt32
        if let explicit {
            sequence = explicit
        } else {
            localSequence &+= 1
            sequence = localSequence
        }
        var routes = routeSet
        var requestURI = remoteTarget
        if let first = routes.first.flatMap(NameAddress.init(parsing:)), let uri = SIPURI(first.uri), !uri.isLooseRouter {
            requestURI = first.uri
            routes.removeFirst()
            routes.append("<\(remoteTarget)>")
        }
        var m = SIPMessage(startLine: .request(method: method, requestURI: requestURI))
        m.headers.append("Via", via)
        m.headers.append("Max-Forwards", "70")
        m.headers.append("From", localParty)
        m.headers.append("To", remoteParty)
        m.headers.append("Call-ID", id.callID)
        m.headers.append("CSeq", CSeq(sequence: sequence, method: method).serialized)
        for route in routes { m.headers.append("Route", route) }
        // Target refresh requests carry our Contact (§12.2.1.1, RFC 3311 §5.1).
        if method == .invite || method == .update { m.headers.append("Contact", "<\(localContact)>") }
        return m
    }

    /// The URI of the next hop for our in-dialog requests: the first route, or the target.
    public var nextHop: SIPURI? {
        if let first = routeSet.first.flatMap(NameAddress.init(parsing:)) { return SIPURI(first.uri) }
        return SIPURI(remoteTarget)
    }

    /// Checks an incoming in-dialog request's CSeq (§12.2.2): lower than the last one is out
    /// of order (answered 500). A target refresh updates the remote target.
    public mutating func receive(_ request: SIPMessage) -> Bool {
        guard let cseq = request.cseq else { return false }
        if request.method != .ack && request.method != .cancel {
            if let last = remoteSequence, cseq.sequence < last { return false }
            remoteSequence = cseq.sequence
        }
        if request.method == .invite || request.method == .update, let contact = request.contacts.first?.uri { remoteTarget = contact }
        return true
    }

    /// The 2xx's dialog replaces the early one of the same tags (RFC 3261 §13.2.2.4) but keeps
    /// counting CSeq from where the early dialog's requests (PRACK, UPDATE) left it.
    public mutating func continueSequence(after early: SIPDialog) {
        guard early.id == id else { return }
        localSequence = max(localSequence, early.localSequence)
    }

    /// A 2xx of ours confirms the dialog (UAS), or the UAC got its 2xx.
    public mutating func confirm(with response: SIPMessage? = nil) {
        state = .confirmed
        if let contact = response?.contacts.first?.uri { remoteTarget = contact }
    }
}

extension SIPMessage {
    /// The Request-URI of a request.
    public var requestURI: String? { if case .request(_, let uri) = startLine { uri } else { nil } }

    /// Whether `option` is in Require (or, with `supported`, in Supported too).
    public func lists(_ option: String, inSupported alsoSupported: Bool = false) -> Bool {
        require.contains(option) || (alsoSupported && supported.contains(option))
    }
}

/// Session timers (RFC 4028): the interval and who refreshes. Tandem asks for 1800 s with
/// itself as refresher (as UAC); as UAS it accepts the caller's interval (never below Min-SE
/// 90 s) and lets the caller refresh when it supports timers, else refreshes itself.
public struct SessionTimer: Hashable, Sendable {
    public enum Refresher: String, Hashable, Sendable { case uac, uas }

    /// Seconds.
    public var interval: Int
    public var refresher: Refresher

    public static let defaultInterval = 1800
    public static let minimum = 90

    public init(interval: Int, refresher: Refresher) {
        self.interval = interval
        self.refresher = refresher
    }

    /// From a Session-Expires value `1800;refresher=uac`.
    public init?(parsing value: String) {
        let parts = value.split(separator: ";").map { $0.trimmingWhitespace() }
        guard let first = parts.first, let seconds = Int(first), seconds > 0 else { return nil }
        interval = seconds
        let refresher = parts.dropFirst().first { $0.lowercased().hasPrefix("refresher=") }.map { String($0.dropFirst(10)).lowercased() }
        self.refresher = refresher.flatMap(Refresher.init(rawValue:)) ?? .uac
    }

    public var headerValue: String { "\(interval);refresher=\(refresher.rawValue)" }

    /// A refresher refreshes at half the interval (§10); the other side gives up at the
    /// interval minus a third or 32 s, whichever is less (§10), if no refresh came.
    public var refreshAfter: Int { max(1, interval / 2) }
    public var expiryWithoutRefresh: Int { interval - min(32, interval / 3) }

    /// What a UAS answers to `request` (§9): nil when the request asked for no timer and
    /// does not support it; 422 territory when below `minimum` is the caller's to handle.
    public static func forAnswer(to request: SIPMessage, minimum: Int = SessionTimer.minimum) -> SessionTimer? {
        let supports = request.lists("timer", inSupported: true)
        guard let asked = request.sessionExpires else {
            return supports ? SessionTimer(interval: defaultInterval, refresher: .uas) : nil
        }
        let hasRefresher = request.headers.first("Session-Expires")?.lowercased().contains("refresher=") == true
        return SessionTimer(interval: max(asked.interval, minimum), refresher: hasRefresher ? asked.refresher : (supports ? .uac : .uas))
    }
}
