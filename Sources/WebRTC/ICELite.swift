import STUN

/// A short-term credential pair (RFC 8445 §5.3: ice-ufrag and ice-pwd).
public struct ICECredentials: Sendable, Hashable {
    public var usernameFragment: String
    public var password: String

    public init(usernameFragment: String, password: String) {
        self.usernameFragment = usernameFragment
        self.password = password
    }

    /// Random credentials: a 4-character-minimum ufrag and a 22-character-minimum password of ice-chars (RFC 8839 §5.4).
    public static func random() -> ICECredentials {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/")
        var rng = SystemRandomNumberGenerator()
        func draw(_ n: Int) -> String { String((0..<n).map { _ in alphabet[Int(rng.next(upperBound: UInt64(alphabet.count)))] }) }
        return ICECredentials(usernameFragment: draw(8), password: draw(24))
    }
}

/// The ICE-lite agent of one leg (RFC 8445 §2.5, §7.3 as a lite implementation, with
/// consent freshness per RFC 7675). A lite agent gathers only host candidates, never sends
/// checks and is always controlled: it answers the browser's Binding requests, learns the
/// browser's address from them (peer-reflexive, §7.3.1.3), and takes the pair the browser
/// nominates with USE-CANDIDATE (§7.3.1.5) as the selected pair. Media may flow only to
/// the selected address, and only while consent is fresh: without a valid check for
/// `consentTimeout` the agent reports consent expiry and the leg stops sending.
///
/// A value type with no I/O: the leg hands in each STUN request with its source address
/// and the time, sends the bytes it gets back, and calls ``checkConsent(now:)`` on a timer.
public struct ICELiteAgent: Sendable {
    public enum State: Sendable, Equatable {
        /// No valid check yet.
        case new
        /// Valid checks arrived, none nominated yet.
        case checking
        /// A pair is selected; media flows.
        case connected
        /// No valid check within the consent timeout (RFC 7675 §5.1).
        case consentExpired
        case closed
    }

    /// What to do with a received request.
    public enum Outcome: Sendable, Equatable {
        /// Send this response to the request's source; `selected` is set when the selected address changed.
        case respond([UInt8], selected: TransportAddress?)
        /// Send this error response (400, 401, 420, 487) to the source.
        case reject([UInt8], code: Int)
        /// Drop silently (not a request for us, or a malformed message).
        case ignore
    }

    public private(set) var local: ICECredentials
    /// The peer's credentials from its SDP, when known (checks may arrive before the answer is applied).
    public private(set) var remote: ICECredentials?
    public private(set) var state: State = .new
    /// The remote address of the selected pair.
    public private(set) var selected: TransportAddress?
    /// The highest PRIORITY seen on a nominating check, so a lower-priority late nomination does not move the pair.
    private var selectedPriority: UInt32 = 0
    /// When the last valid check from the selected address arrived (ms, monotonic).
    public private(set) var lastConsent: Int64 = 0
    /// Consent lifetime: RFC 7675 §5.1 says 30 s.
    public var consentTimeout: Int64 = 30_000
    /// Remote addresses that sent valid checks (peer-reflexive and signalled ones alike), bounded.
    public private(set) var validatedAddresses: [TransportAddress] = []
    /// How many validated addresses are remembered (the oldest goes first).
    public static let maximumValidatedAddresses = 16
    public var software: String? = "Tandem"

    public init(local: ICECredentials = .random(), remote: ICECredentials? = nil) {
        self.local = local
        self.remote = remote
    }

    /// The peer's credentials arrived (its offer or answer).
    public mutating func setRemote(_ credentials: ICECredentials) { remote = credentials }

    /// An ICE restart (RFC 8445 §9): new credentials on both sides. The selected pair stays in
    /// use until the peer nominates again.
    public mutating func restart(local newLocal: ICECredentials, remote newRemote: ICECredentials?) {
        local = newLocal
        remote = newRemote
        selectedPriority = 0
        if state == .consentExpired || state == .new { state = .new }
    }

    /// A STUN message from `source` (first byte 0–3, RFC 7983). `now` in ms.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer, from source: TransportAddress, now: Int64) -> Outcome {
        guard state != .closed, state != .consentExpired else { return .ignore }
        guard let message = try? STUNMessage.decode(bytes) else { return .ignore }
        guard message.type.method == .binding else { return .ignore }
        switch message.type.messageClass {
        case .request: return answer(message, from: source, now: now)
        default: return .ignore  // indications (keepalives) and responses: a lite agent sends no requests
        }
    }

    private static let known: Set<STUNAttributeType> = [.username, .messageIntegrity, .messageIntegritySHA256, .fingerprint, .priority, .useCandidate, .iceControlling, .iceControlled]

    private mutating func answer(_ request: STUNMessage, from source: TransportAddress, now: Int64) -> Outcome {
        // RFC 8445 §7.3: FINGERPRINT and short-term credentials are mandatory.
        guard request.hadFingerprint else { return .ignore }
        let unknown = request.unknownComprehensionRequired(known: Self.known)
        guard unknown.isEmpty else { return reject(request, 420, "Unknown Attribute", extra: [.unknownAttributes(unknown)]) }
        guard let username = try? request.username, request.hasIntegrity else { return reject(request, 400, "Bad Request", integrity: false) }
        // USERNAME is "<our ufrag>:<their ufrag>" (RFC 8445 §7.2.2).
        guard let colon = username.firstIndex(of: ":"), username[..<colon] == local.usernameFragment else {
            return reject(request, 401, "Unauthorized", integrity: false)
        }
        if let remote, username[username.index(after: colon)...] != remote.usernameFragment {
            return reject(request, 401, "Unauthorized", integrity: false)
        }
        guard request.verifyIntegrity(key: Array(local.password.utf8)) else { return reject(request, 401, "Unauthorized", integrity: false) }
        guard let priority = try? request.priority else { return reject(request, 400, "Bad Request") }
        // A lite agent is always controlled (§6.1.1): a peer that also claims controlled must switch.
        if request.has(.iceControlled) { return reject(request, 487, "Role Conflict") }

        if !validatedAddresses.contains(source) {
            if validatedAddresses.count >= Self.maximumValidatedAddresses { validatedAddresses.removeFirst() }
            validatedAddresses.append(source)
        }
        var changed: TransportAddress?
        if request.has(.useCandidate), selected != source, selected == nil || priority >= selectedPriority || state == .consentExpired {
            selected = source
            selectedPriority = priority
            changed = source
        } else if request.has(.useCandidate), selected == source {
            selectedPriority = max(selectedPriority, priority)
        }
        if selected == source { lastConsent = now }
        if selected != nil { state = .connected } else if state == .new { state = .checking }

        var response = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .successResponse), transactionID: request.transactionID)
        response.attributes = [.xorAddress(.xorMappedAddress, source, transactionID: request.transactionID)]
        return .respond(response.encode(integrity: .sha1(key: Array(local.password.utf8)), fingerprint: true), selected: changed)
    }

    private func reject(_ request: STUNMessage, _ code: Int, _ reason: String, integrity: Bool = true, extra: [STUNAttribute] = []) -> Outcome {
        var response = STUNMessage(type: STUNMessageType(method: .binding, messageClass: .errorResponse), transactionID: request.transactionID)
        response.attributes = [.errorCode(code, reason: reason)] + extra
        if let software { response.attributes.append(.text(.software, software)) }
        // 400/401 go out without integrity (the request's credentials were not valid, RFC 8489 §9.1.3).
        let bytes = response.encode(integrity: integrity ? .sha1(key: Array(local.password.utf8)) : .none, fingerprint: true)
        return .reject(bytes, code: code)
    }

    /// Checks consent (RFC 7675 §5.1): true when it has just expired.
    public mutating func checkConsent(now: Int64) -> Bool {
        guard state == .connected, now - lastConsent > consentTimeout else { return false }
        state = .consentExpired
        return true
    }

    /// Whether media may be sent now (RFC 7675 §5: only with fresh consent).
    public var maySend: Bool { state == .connected }

    public mutating func close() { state = .closed }
}
