import Crypto
import Foundation

/// A session token an application server signs itself with its OAuth client's WebRTC
/// secret, so that a browser can connect to `/webkit/ws` without the server asking Tandem
/// for a session first (the idea of TURN's REST credentials, draft-uberti-behave-turn-rest):
///
///     w1:<client id>:<extension>:<expiry, Unix seconds>:<signature>
///
/// where the signature is the unpadded base64url HMAC-SHA256 (RFC 2104) under the secret of
/// everything before the last colon. The first connection makes a session holding the
/// extension until the expiry; the token then is that session's token.
public struct SignedSessionToken: Sendable, Equatable {
    public var clientID: String
    public var `extension`: String
    /// Seconds since 1970.
    public var expires: Int64
    public var signature: [UInt8]

    public static let version = "w1"
    /// The longest a signed token may run ahead of now (24 h).
    public static let maximumLifetime: Int64 = 86_400
    /// Longer text is not looked at.
    public static let maximumLength = 512

    /// Why a token is refused.
    public enum Problem: Error, Sendable, Equatable, CustomStringConvertible {
        case malformed
        case expired
        case tooLong
        case unknownClient
        case noWebRTCSecret
        case badSignature

        public var description: String {
            switch self {
            case .malformed: "not w1:<client id>:<extension>:<expiry>:<signature>"
            case .expired: "expired"
            case .tooLong: "expires more than 24 h from now"
            case .unknownClient: "no such client"
            case .noWebRTCSecret: "the client's WebRTC secret is off"
            case .badSignature: "the signature does not match the client's WebRTC secret"
            }
        }
    }

    /// Whether `text` has the form of a signed token (and not of a random session token).
    public static func looksSigned(_ text: String) -> Bool { text.hasPrefix(version + ":") }

    public init(clientID: String, extension number: String, expires: Int64, signature: [UInt8]) {
        self.clientID = clientID
        self.extension = number
        self.expires = expires
        self.signature = signature
    }

    public init(parsing text: String) throws(Problem) {
        guard text.utf8.count <= Self.maximumLength else { throw .malformed }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == Self.version, !parts[1].isEmpty, !parts[2].isEmpty,
              parts[2].utf8.count <= 32, parts[2].allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "+") }),
              let expires = Int64(parts[3]), let signature = Self.base64URLDecoded(parts[4]), signature.count == 32 else { throw .malformed }
        self.init(clientID: String(parts[1]), extension: String(parts[2]), expires: expires, signature: signature)
    }

    /// What the signature covers.
    var signedPart: String { "\(Self.version):\(clientID):\(self.extension):\(expires)" }

    /// The token for `clientID` and `extension` until `expires`, signed with `secret`.
    public static func sign(clientID: String, extension number: String, expires: Int64, secret: String) -> String {
        var token = SignedSessionToken(clientID: clientID, extension: number, expires: expires, signature: [])
        token.signature = Array(HMAC<SHA256>.authenticationCode(for: Data(token.signedPart.utf8), using: SymmetricKey(data: Data(secret.utf8))))
        return token.signedPart + ":" + Store.base64URL(token.signature)
    }

    /// Checks the signature against `secret` (constant-time) and the expiry against `now`.
    public func verify(secret: String, now: Date = Date()) throws(Problem) {
        guard HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: Data(signedPart.utf8), using: SymmetricKey(data: Data(secret.utf8))) else {
            throw .badSignature
        }
        let seconds = Int64(now.timeIntervalSince1970)
        guard expires > seconds else { throw .expired }
        guard expires - seconds <= Self.maximumLifetime else { throw .tooLong }
    }

    static func base64URLDecoded(_ text: Substring) -> [UInt8]? {
        guard text.count <= 64, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard let bytes = Data(base64Encoded: base64).map(Array.init) else { return nil }
        // One spelling per signature: a last character whose unused low bits are set decodes
        // to the same bytes, and would make a second token string for the same token.
        guard Store.base64URL(bytes) == text else { return nil }
        return bytes
    }
}
