import Crypto
import Foundation
import STUN
import Synchronization

/// The shared secrets behind REST-API credentials: the current one, and the previous one
/// while it is still honoured after a rotation (so running clients are not cut off).
/// Shared by every event loop; updates are rare and take a lock.
public final class SharedSecrets: Sendable {
    private let state: Mutex<(current: String, previous: String?, previousUntil: Int)>

    public init(current: String, previous: String? = nil, previousValidUntil: Int = 0) {
        state = Mutex((current, previous, previousValidUntil))
    }

    /// Replaces the secret; the old one stays valid until `previousValidUntil` (unix seconds).
    public func rotate(to secret: String, previousValidUntil: Int) {
        state.withLock { s in s = (secret, s.current, previousValidUntil) }
    }

    /// Sets the secrets as stored (used when the configuration is reloaded).
    public func set(current: String, previous: String?, previousValidUntil: Int) {
        state.withLock { $0 = (current, previous, previousValidUntil) }
    }

    /// The secrets valid at `now`, current first.
    public func valid(at now: Int) -> [String] {
        state.withLock { s in
            if let p = s.previous, s.previousUntil > now { return [s.current, p] }
            return [s.current]
        }
    }
}

/// Long-term credential check for REST-API usernames (RFC 8489 §9.2, RFC 8656 §7.2 step 2).
public struct RESTAuthenticator: Sendable {
    public var realm: String
    public var secrets: SharedSecrets

    public init(realm: String, secrets: SharedSecrets) {
        self.realm = realm
        self.secrets = secrets
    }

    /// Why a request's credentials were refused, as counted in metrics.
    public enum Failure: String, Error, Sendable {
        case missingIntegrity = "missing_integrity"
        case malformedUsername = "malformed_username"
        case expiredUsername = "expired_username"
        case wrongRealm = "wrong_realm"
        case badIntegrity = "bad_integrity"
    }

    /// The long-term key for `username` if `message`'s integrity verifies with one of the
    /// valid secrets and the username has not expired.
    public func authenticate(_ message: STUNMessage, username: String, realm requestRealm: String, now: Int) -> Result<[UInt8], Failure> {
        guard message.hasIntegrity else { return .failure(.missingIntegrity) }
        guard let expiry = RESTCredential.expiry(ofUsername: username[...]) else { return .failure(.malformedUsername) }
        guard expiry > now else { return .failure(.expiredUsername) }
        guard requestRealm == realm else { return .failure(.wrongRealm) }
        for secret in secrets.valid(at: now) {
            let key = STUNMessage.longTermKey(username: username, realm: realm, password: RESTCredential.password(secret: secret, username: username))
            if message.verifyIntegrity(key: key) { return .success(key) }
        }
        return .failure(.badIntegrity)
    }
}
