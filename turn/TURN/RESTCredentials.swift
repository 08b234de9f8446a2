import Crypto
import Foundation

/// Time-limited TURN credentials after the "TURN REST API" convention
/// (draft-uberti-behave-turn-rest-00 §2.2), the scheme coturn's `use-auth-secret` implements:
/// username `<unix-expiry>[:<user>]`, password `base64(HMAC-SHA1(shared secret, username))`.
public struct RESTCredential: Sendable, Equatable {
    /// The long-term credential username (RFC 8489 §9.2), `<expiry>[:<user>]`.
    public var username: String
    /// The password derived from the shared secret.
    public var password: String
    /// The moment the credential stops being accepted.
    public var expiry: Date

    /// Issues a credential valid for `ttl` seconds from `now`.
    public static func issue(secret: String, user: String?, ttl: Int, now: Date = Date()) -> RESTCredential {
        let expiry = Int(now.timeIntervalSince1970) + max(ttl, 0)
        let username = user.map { $0.isEmpty ? "\(expiry)" : "\(expiry):\($0)" } ?? "\(expiry)"
        return RESTCredential(
            username: username,
            password: password(secret: secret, username: username),
            expiry: Date(timeIntervalSince1970: TimeInterval(expiry))
        )
    }

    /// `base64(HMAC-SHA1(secret, username))`.
    public static func password(secret: String, username: String) -> String {
        let mac = HMAC<Insecure.SHA1>.authenticationCode(
            for: Data(username.utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return Data(mac).base64EncodedString()
    }

    /// The expiry encoded in a REST-API username: the digits before the first `:`,
    /// or nil when the username does not follow the convention.
    public static func expiry(ofUsername username: Substring) -> Int? {
        let head = username.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard !head.isEmpty, head.count <= 19, head.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(head)
    }
}
