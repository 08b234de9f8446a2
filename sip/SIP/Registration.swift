/// What one extension registers (RFC 3261 §10.2): its address-of-record, the registrar, the
/// contact it can be reached at, the expiry it asks for, and its digest credentials.
public struct RegistrationConfiguration: Hashable, Sendable {
    /// The address-of-record, e.g. `sip:3001@pbx.example.com` (From and To).
    public var addressOfRecord: String
    /// The Request-URI of REGISTER, e.g. `sip:pbx.example.com`.
    public var registrar: String
    /// The Contact URI, e.g. `sip:3001@192.0.2.4:5060`.
    public var contact: String
    /// The top Via's protocol and sent-by, e.g. `UDP 192.0.2.4:5060`.
    public var via: String
    /// Requested expiry in seconds (default 600; never under ``minimumExpires``).
    public var expires: Int
    /// `+sip.instance` (RFC 5626 §4.1), e.g. `<urn:uuid:…>`, sent with `reg-id` when both are set.
    public var instanceID: String?
    public var registrationID: Int?
    public var username: String
    public var password: String
    /// The realm the credentials belong to: among several challenges, one of this realm is
    /// answered (nil: the first usable one).
    public var realm: String?

    /// The floor on the expiry Tandem asks for.
    public static let minimumExpires = 300

    public init(addressOfRecord: String, registrar: String, contact: String, via: String, expires: Int = 600,
                instanceID: String? = nil, registrationID: Int? = nil, username: String, password: String, realm: String? = nil) {
        self.addressOfRecord = addressOfRecord
        self.registrar = registrar
        self.contact = contact
        self.via = via
        self.expires = max(expires, Self.minimumExpires)
        self.instanceID = instanceID
        self.registrationID = registrationID
        self.username = username
        self.password = password
        self.realm = realm
    }
}

/// The registration of one extension as a value type (RFC 3261 §10.2, RFC 8760 digest,
/// RFC 5626 instance): it builds each REGISTER, answers a 401/407 challenge once (again
/// only when the nonce went `stale`; a second challenge means wrong credentials), follows 423's
/// Min-Expires, says when to refresh, and unregisters. The runtime sends the requests
/// through client transactions and feeds back their final responses or timeouts.
public struct RegistrationClient: Sendable {
    public enum State: Hashable, Sendable {
        case unregistered
        case registering
        case registered(expires: Int)
        case unregistering
        case failed(String)
    }

    public enum Event: Hashable, Sendable {
        /// Send this REGISTER (in a new client transaction).
        case send(SIPMessage)
        /// Registered for this many seconds; refresh after `refreshAfter` seconds.
        case registered(expires: Int, refreshAfter: Int)
        /// The binding is gone (after an unregister).
        case unregistered
        /// Registration failed; `statusCode` nil for a timeout or transport failure.
        /// `retryAfter` from a 503 (seconds), for the failover back-off.
        case failed(reason: String, statusCode: Int?, retryAfter: Int?)
    }

    public let configuration: RegistrationConfiguration
    public private(set) var state: State = .unregistered
    /// One Call-ID for every REGISTER of this contact (RFC 3261 §10.2.4), with the From tag.
    public let callID: String
    public let fromTag: String
    private var sequence: UInt32 = 0
    private var expires: Int
    private var digest: DigestClient
    /// The challenge last answered, and where its credentials go.
    private var answered: (challenge: DigestChallenge, proxy: Bool)?
    /// The last REGISTER carried credentials for a challenge answered before (a refresh).
    private var reusingChallenge = false

    public init(_ configuration: RegistrationConfiguration, callID: String, fromTag: String) {
        self.configuration = configuration
        self.callID = callID
        self.fromTag = fromTag
        expires = configuration.expires
        digest = DigestClient(username: configuration.username, password: configuration.password)
    }

    /// Registers (or refreshes) the binding.
    public mutating func register(using generator: inout some RandomNumberGenerator) -> [Event] {
        // A refresh answers the last challenge again (the next nonce count) instead of waiting
        // for a new one: half the REGISTERs. A registrar that wants a fresh nonce challenges
        // anew, and that challenge is answered like a first one.
        if case .registered = state, answered != nil {
            reusingChallenge = true
        } else {
            answered = nil
            reusingChallenge = false
            digest.reset()
        }
        state = .registering
        return [.send(request(expires: expires, generator: &generator))]
    }

    /// Removes the binding (Expires: 0).
    public mutating func unregister(using generator: inout some RandomNumberGenerator) -> [Event] {
        state = .unregistering
        reusingChallenge = answered != nil
        return [.send(request(expires: 0, generator: &generator))]
    }

    /// The final response of the last REGISTER.
    public mutating func receive(_ response: SIPMessage, using generator: inout some RandomNumberGenerator) -> [Event] {
        guard let code = response.statusCode, code >= 200, response.callID == callID, response.cseq?.sequence == sequence else { return [] }
        let asked = state == .unregistering ? 0 : expires
        switch code {
        case 200...299:
            if state == .unregistering {
                state = .unregistered
                return [.unregistered]
            }
            let granted = grantedExpires(response) ?? asked
            state = .registered(expires: granted)
            return [.registered(expires: granted, refreshAfter: Self.refreshAfter(granted))]
        case 401, 407:
            let proxy = code == 407
            var challenges = response.headers.values(proxy ? "Proxy-Authenticate" : "WWW-Authenticate").compactMap(DigestChallenge.init(parsing:))
            if let realm = configuration.realm, challenges.contains(where: { $0.realm == realm }) { challenges.removeAll { $0.realm != realm } }
            guard let challenge = DigestClient.choose(challenges) else { return fail("No usable digest challenge", code, response) }
            // Challenged again after answering, and not because the nonce went stale: the
            // credentials were refused (whether the registrar kept its nonce or made a new one).
            if let answered, answered.proxy == proxy, !challenge.stale, !reusingChallenge { return fail("Wrong credentials", code, response) }
            reusingChallenge = false
            answered = (challenge, proxy)
            return [.send(request(expires: asked, generator: &generator))]
        case 423:
            guard let minimum = response.minExpires, minimum > expires, minimum <= 86_400 else {
                return fail("423 without a usable Min-Expires", code, response)
            }
            expires = minimum
            return [.send(request(expires: expires, generator: &generator))]
        default:
            return fail(response.reasonPhrase, code, response)
        }
    }

    /// The last REGISTER's transaction timed out or could not be sent.
    public mutating func timedOut() -> [Event] {
        state = .failed("Timeout")
        return [.failed(reason: "Timeout", statusCode: nil, retryAfter: nil)]
    }

    /// When to refresh a binding of `expires` seconds: a minute before it ends, or a quarter
    /// of it before for short ones.
    public static func refreshAfter(_ expires: Int) -> Int {
        max(1, expires - min(60, expires / 4))
    }

    private mutating func fail(_ reason: String, _ code: Int, _ response: SIPMessage) -> [Event] {
        state = .failed(reason)
        let retryAfter = response.headers.first("Retry-After").flatMap { Int($0.split(separator: ";").first?.trimmingWhitespace() ?? "") }
        return [.failed(reason: reason, statusCode: code, retryAfter: retryAfter)]
    }

    /// The expiry the registrar granted our contact: its `expires` parameter, else the
    /// Expires header (RFC 3261 §10.2.4).
    private func grantedExpires(_ response: SIPMessage) -> Int? {
        let mine = response.contacts.first { Self.sameURI($0.uri, configuration.contact) }
        if let value = mine?.parameters["expires"], let seconds = Int(value) { return seconds }
        return response.expires
    }

    /// URIs compared as registrars echo them: scheme and user-host-port case-insensitively,
    /// URI parameters ignored.
    static func sameURI(_ a: String, _ b: String) -> Bool {
        func core(_ uri: String) -> String { String(uri.split(separator: ";").first ?? "").lowercased() }
        return core(a) == core(b)
    }

    private mutating func request(expires seconds: Int, generator: inout some RandomNumberGenerator) -> SIPMessage {
        sequence += 1
        var m = SIPMessage(startLine: .request(method: .register, requestURI: configuration.registrar))
        let branch = "z9hG4bK" + String(generator.next(), radix: 36)
        m.headers.append("Via", "SIP/2.0/\(configuration.via);branch=\(branch);rport")
        m.headers.append("Max-Forwards", "70")
        m.headers.append("From", "<\(configuration.addressOfRecord)>;tag=\(fromTag)")
        m.headers.append("To", "<\(configuration.addressOfRecord)>")
        m.headers.append("Call-ID", callID)
        m.headers.append("CSeq", CSeq(sequence: sequence, method: .register).serialized)
        var contact = "<\(configuration.contact)>"
        if let instance = configuration.instanceID, let regID = configuration.registrationID {
            contact += ";+sip.instance=\"\(instance)\";reg-id=\(regID)"
            m.headers.append("Supported", "outbound, path")
        }
        m.headers.append("Contact", contact)
        m.headers.append("Expires", String(seconds))
        m.headers.append("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK")
        m.headers.append("User-Agent", "Tandem")
        if let (challenge, proxy) = answered {
            let cnonce = String(generator.next(), radix: 36)
            if let value = digest.authorization(for: challenge, method: .register, uri: configuration.registrar, cnonce: cnonce) {
                m.headers.append(proxy ? "Proxy-Authorization" : "Authorization", value)
            }
        }
        return m
    }
}

extension SIPMessage {
    /// The Status-Line's reason phrase ("" for a request).
    public var reasonPhrase: String { if case .response(_, let reason) = startLine { reason } else { "" } }
}
