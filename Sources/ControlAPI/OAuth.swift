import Foundation
import HTTPTypes
import Hummingbird
import JWTKit
import Logging
import NIOCore

/// A client the token endpoint may issue a token to, once its secret checked out.
public struct OAuthClientGrant: Sendable, Equatable {
    public var clientID: String
    /// Minutes an access token lives; 0 = unlimited.
    public var tokenValidityMinutes: Int

    public init(clientID: String, tokenValidityMinutes: Int) {
        self.clientID = clientID
        self.tokenValidityMinutes = tokenValidityMinutes
    }
}

/// Checks a client's id and secret (the Store does, in constant time); nil when they do not match.
public typealias OAuthClientVerifier = @Sendable (_ clientID: String, _ secret: String) async throws -> OAuthClientGrant?

/// An error of the token endpoint (RFC 6749 §5.2) or of a protected resource (RFC 6750 §3.1),
/// with its HTTP status.
public struct OAuthError: Error, Sendable, Equatable {
    public enum Code: String, Sendable {
        case invalidRequest = "invalid_request"
        case invalidClient = "invalid_client"
        case invalidGrant = "invalid_grant"
        case unauthorizedClient = "unauthorized_client"
        case unsupportedGrantType = "unsupported_grant_type"
        case invalidScope = "invalid_scope"
        case invalidToken = "invalid_token"
        case insufficientScope = "insufficient_scope"
    }

    public var code: Code
    public var description: String

    public var status: HTTPResponse.Status {
        switch code {
        case .invalidClient, .invalidToken: .unauthorized
        case .insufficientScope: .forbidden
        default: .badRequest
        }
    }
}

/// The claims of Tandem's access tokens (RFC 7519 §4.1, RFC 9068's profile): issuer,
/// audience, the client as subject, issue and expiry times, an id, and the scopes.
public struct AccessTokenClaims: JWTPayload, Equatable {
    public var iss: IssuerClaim
    public var aud: AudienceClaim
    public var sub: SubjectClaim
    public var iat: IssuedAtClaim
    /// Absent for a token of unlimited validity.
    public var exp: ExpirationClaim?
    public var jti: IDClaim
    public var scope: String

    public func verify(using algorithm: some JWTAlgorithm) throws {
        try exp?.verifyNotExpired()
        try aud.verifyIntendedAudience(includes: OAuthTokenService.audience)
        guard iss.value == OAuthTokenService.issuer else { throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "not Tandem's") }
    }

    public static func == (a: AccessTokenClaims, b: AccessTokenClaims) -> Bool { a.jti.value == b.jti.value }
}

/// The OAuth 2.0 authorization server of the control API: the client-credentials grant
/// (RFC 6749 §4.4) at `POST /oauth/token`, HS256-signed JWT access tokens (jwt-kit) with
/// the key from the database, and their verification for `/api/v1` (RFC 6750).
public final class OAuthTokenService: Sendable {
    public static let issuer = "tandem"
    public static let audience = "tandem-api"
    /// The scopes a token may carry; a request without `scope` gets them all.
    public static let scopes = ["sessions", "extensions", "calls", "turn"]

    private let keyCollection: JWTKeyCollection
    /// Adds the key to the collection (an actor) once; signing and verifying wait for it.
    private let keyAdded: Task<Void, Never>
    let verifyClient: OAuthClientVerifier
    /// Whether a token's client still exists (a revoked client's tokens stop working at once).
    let isClientActive: (@Sendable (String) async -> Bool)?
    let logger: Logger

    /// `signingKey`: the HS256 secret (at least 32 bytes), kept in the database.
    public init(signingKey: [UInt8], verifyClient: @escaping OAuthClientVerifier, isClientActive: (@Sendable (String) async -> Bool)? = nil, logger: Logger) {
        let keys = JWTKeyCollection()
        keyCollection = keys
        keyAdded = Task { await keys.add(hmac: HMACKey(from: signingKey), digestAlgorithm: .sha256) }
        self.verifyClient = verifyClient
        self.isClientActive = isClientActive
        self.logger = logger
    }

    var keys: JWTKeyCollection {
        get async {
            await keyAdded.value
            return keyCollection
        }
    }

    /// What a token request said (RFC 6749 §4.4.2, §2.3.1).
    struct TokenRequest: Equatable {
        var clientID: String
        var secret: String
        var usedBasic: Bool
        var scopes: [String]
    }

    /// Reads and checks a token request: the client by HTTP Basic or by form fields (not
    /// both), `grant_type=client_credentials`, known scopes, no repeated parameter.
    static func parseTokenRequest(authorization: String?, contentType: String?, body: [UInt8]) throws(OAuthError) -> TokenRequest {
        guard body.count <= 8192 else { throw OAuthError(code: .invalidRequest, description: "request body too large") }
        guard contentType?.lowercased().split(separator: ";").first?.trimmingCharacters(in: .whitespaces) == "application/x-www-form-urlencoded" else {
            throw OAuthError(code: .invalidRequest, description: "the body must be application/x-www-form-urlencoded")
        }
        var fields: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = formDecode(parts[0]), let value = formDecode(parts.count > 1 ? parts[1] : "") else {
                throw OAuthError(code: .invalidRequest, description: "malformed form encoding")
            }
            guard fields[name] == nil else { throw OAuthError(code: .invalidRequest, description: "parameter \(name) given more than once") }
            fields[name] = value
        }
        var basic: (String, String)?
        if let authorization {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "basic", let decoded = Data(base64Encoded: String(parts[1])),
                  let text = String(data: decoded, encoding: .utf8), let colon = text.firstIndex(of: ":"),
                  let id = formDecode(text[..<colon]), let secret = formDecode(text[text.index(after: colon)...]) else {
                throw OAuthError(code: .invalidClient, description: "the Authorization header is not HTTP Basic client credentials")
            }
            basic = (id, secret)
        }
        let inBody = fields["client_id"] != nil || fields["client_secret"] != nil
        if basic != nil, inBody { throw OAuthError(code: .invalidRequest, description: "client credentials in both the Authorization header and the body") }
        guard let grant = fields["grant_type"] else { throw OAuthError(code: .invalidRequest, description: "grant_type is missing") }
        guard grant == "client_credentials" else { throw OAuthError(code: .unsupportedGrantType, description: "only client_credentials is supported") }
        guard let (id, secret) = basic ?? fields["client_id"].map({ ($0, fields["client_secret"] ?? "") }), !id.isEmpty else {
            throw OAuthError(code: .invalidClient, description: "no client authentication")
        }
        var scopes = scopes
        if let asked = fields["scope"] {
            let names = asked.split(separator: " ").map(String.init)
            guard !names.isEmpty, names.allSatisfy(Self.scopes.contains) else {
                throw OAuthError(code: .invalidScope, description: "known scopes: \(Self.scopes.joined(separator: " "))")
            }
            scopes = Self.scopes.filter(names.contains)
        }
        return TokenRequest(clientID: id, secret: secret, usedBasic: basic != nil, scopes: scopes)
    }

    /// `application/x-www-form-urlencoded` decoding (`+` is a space, `%XX` a byte).
    static func formDecode(_ text: some StringProtocol) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }

    /// Issues a token for a checked request: the JSON body of RFC 6749 §5.1.
    func issue(_ request: TokenRequest, now: Date = Date()) async throws -> (body: [String: any Sendable], claims: AccessTokenClaims) {
        guard let grant = try await verifyClient(request.clientID, request.secret) else {
            throw OAuthError(code: .invalidClient, description: "unknown client or wrong secret")
        }
        let lifetime = grant.tokenValidityMinutes * 60
        if lifetime == 0 {
            logger.warning("Issued an access token without expiry (token validity 0 = unlimited)", metadata: ["client-id": "\(grant.clientID)"])
        }
        let claims = AccessTokenClaims(
            iss: IssuerClaim(value: Self.issuer), aud: AudienceClaim(value: [Self.audience]), sub: SubjectClaim(value: grant.clientID),
            iat: IssuedAtClaim(value: now), exp: lifetime > 0 ? ExpirationClaim(value: now.addingTimeInterval(TimeInterval(lifetime))) : nil,
            jti: IDClaim(value: UUID().uuidString), scope: request.scopes.joined(separator: " "))
        let token = try await keys.sign(claims)
        var body: [String: any Sendable] = ["access_token": token, "token_type": "Bearer", "scope": claims.scope]
        if lifetime > 0 { body["expires_in"] = lifetime }
        return (body, claims)
    }

    /// The claims of a bearer token (RFC 6750 §2.1) that carries `scope`, or the error to answer.
    public func authenticate(authorization: String?, scope: String) async throws(OAuthError) -> AccessTokenClaims {
        guard let authorization, authorization.lowercased().hasPrefix("bearer ") else {
            throw OAuthError(code: .invalidToken, description: "a Bearer token is required")
        }
        let token = authorization.dropFirst(7).trimmingCharacters(in: .whitespaces)
        let claims: AccessTokenClaims
        do {
            claims = try await keys.verify(token, as: AccessTokenClaims.self)
        } catch {
            throw OAuthError(code: .invalidToken, description: "the token is invalid or expired")
        }
        if let isClientActive, !(await isClientActive(claims.sub.value)) {
            throw OAuthError(code: .invalidToken, description: "the token's client was revoked")
        }
        guard claims.scope.split(separator: " ").contains(Substring(scope)) else {
            throw OAuthError(code: .insufficientScope, description: "the token lacks the scope \(scope)")
        }
        return claims
    }

    /// `POST /oauth/token`.
    func addRoutes(to router: Router<HTTPSRequestContext>) {
        router.post("oauth/token") { request, _ -> Response in
            var request = request
            let body = try await request.collectBody(upTo: 8192)
            do {
                let parsed = try Self.parseTokenRequest(
                    authorization: request.headers[.authorization], contentType: request.headers[.contentType], body: Array(buffer: body))
                let (json, _) = try await self.issue(parsed)
                return Self.json(.ok, json)
            } catch let error as OAuthError {
                let usedBasic = request.headers[.authorization]?.lowercased().hasPrefix("basic") == true
                return Self.errorResponse(error, basicChallenge: error.code == .invalidClient && usedBasic)
            }
        }
    }

    /// Pragma (RFC 9111 §5.4), which RFC 6749 §5.1 asks for beside Cache-Control.
    static let pragma = HTTPField.Name("Pragma")!

    static func json(_ status: HTTPResponse.Status, _ object: [String: any Sendable], headers extra: HTTPFields = [:]) -> Response {
        var headers: HTTPFields = [.contentType: "application/json", .cacheControl: "no-store", Self.pragma: "no-cache"]
        headers.append(contentsOf: extra)
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The error body of RFC 6749 §5.2; a failed HTTP Basic authentication gets its challenge.
    static func errorResponse(_ error: OAuthError, basicChallenge: Bool) -> Response {
        var extra: HTTPFields = [:]
        if basicChallenge { extra[.wwwAuthenticate] = "Basic realm=\"tandem\", charset=\"UTF-8\"" }
        if error.code == .invalidToken || error.code == .insufficientScope {
            extra[.wwwAuthenticate] = "Bearer realm=\"tandem\", error=\"\(error.code.rawValue)\", error_description=\"\(error.description)\""
        }
        return json(error.status, ["error": error.code.rawValue, "error_description": error.description], headers: extra)
    }
}
