import Crypto
import Foundation
import GRDB

/// An OAuth 2.0 client allowed the client-credentials grant (RFC 6749 §4.4).
/// The secret is not part of it: only a salted hash is stored.
public struct OAuthClient: Sendable, Equatable {
    public var clientID: String
    /// Validity of access tokens issued to this client, in minutes (0 = unlimited).
    public var tokenValidityMinutes: Int
    /// Whether the client has a WebRTC secret: it may sign session tokens itself
    /// (``SignedSessionToken``).
    public var webRTCSecretEnabled: Bool = false
    public var createdAt: Date
    public var updatedAt: Date
}

extension Store {
    /// The client with this id, if any.
    public func oauthClient(id: String) async throws -> OAuthClient? {
        try await pool.read { db in try OAuthClientsTable.fetch(db, id: id)?.client }
    }

    /// All clients, ordered by id.
    public func oauthClients() async throws -> [OAuthClient] {
        try await pool.read { db in try OAuthClientsTable.fetchAll(db) }
    }

    /// Creates a client with a generated secret and returns the plaintext secret (shown once).
    public func createOAuthClient(id: String, tokenValidityMinutes: Int = 20) async throws -> String {
        let secret = try await pool.write { db in
            guard try OAuthClientsTable.fetch(db, id: id) == nil else { throw StoreError.duplicateClient(id: id) }
            return try OAuthClientsTable.insert(db, id: id, tokenValidityMinutes: tokenValidityMinutes, now: Date())
        }
        logger.notice("Created OAuth client", metadata: ["client-id": "\(id)"])
        return secret
    }

    /// Replaces a client's secret with a generated one and returns it (shown once).
    public func resetOAuthClientSecret(id: String) async throws -> String {
        let secret = try await pool.write { db in
            guard try OAuthClientsTable.fetch(db, id: id) != nil else { throw StoreError.unknownClient(id: id) }
            let secret = OAuthClientsTable.generateSecret()
            let salt = Secrets.randomBytes(count: 16)
            try db.execute(
                sql: "UPDATE oauth_clients SET secret_salt = ?, secret_hash = ?, updated_at = ? WHERE client_id = ?",
                arguments: [
                    Data(salt), Data(OAuthClientsTable.hash(secret: secret, salt: salt)),
                    Date().timeIntervalSince1970, id,
                ])
            return secret
        }
        logger.notice("Reset OAuth client secret", metadata: ["client-id": "\(id)"])
        return secret
    }

    /// Changes how long the client's new access tokens are valid (0 = unlimited).
    public func setOAuthClientTokenValidity(id: String, minutes: Int) async throws {
        try await pool.write { db in
            try OAuthClientsTable.validate(clientID: id, tokenValidityMinutes: minutes)
            try db.execute(sql: "UPDATE oauth_clients SET token_validity_minutes = ?, updated_at = ? WHERE client_id = ?",
                           arguments: [minutes, Date().timeIntervalSince1970, id])
            guard db.changesCount > 0 else { throw StoreError.unknownClient(id: id) }
        }
    }

    /// Turns the client's WebRTC secret on (a new one, returned to be shown once) or off
    /// (nil; the tokens it signed are refused from now on, sessions already made keep running).
    @discardableResult
    public func setOAuthClientWebRTCSecret(id: String, enabled: Bool) async throws -> String? {
        let secret = enabled ? Secrets.randomHex(byteCount: 32) : nil
        try await pool.write { db in
            try db.execute(sql: "UPDATE oauth_clients SET webrtc_secret = ?, updated_at = ? WHERE client_id = ?", arguments: [secret, Date().timeIntervalSince1970, id])
            guard db.changesCount > 0 else { throw StoreError.unknownClient(id: id) }
        }
        logger.notice(enabled ? "Made a new WebRTC secret for an OAuth client" : "Turned an OAuth client's WebRTC secret off", metadata: ["client-id": "\(id)"])
        return secret
    }

    /// Removes a client; false when there was none. Its access tokens stop working at once
    /// (the API checks the client on every request).
    public func deleteOAuthClient(id: String) async throws -> Bool {
        let deleted = try await pool.write { db in
            try db.execute(sql: "DELETE FROM oauth_clients WHERE client_id = ?", arguments: [id])
            return db.changesCount > 0
        }
        if deleted { logger.notice("Revoked OAuth client", metadata: ["client-id": "\(id)"]) }
        return deleted
    }

    /// The client when `secret` is its secret, else nil. The comparison is constant-time.
    public func verifyOAuthClient(id: String, secret: String) async throws -> OAuthClient? {
        try await pool.read { db in
            guard let stored = try OAuthClientsTable.fetch(db, id: id) else { return nil }
            return OAuthClientsTable.matches(secret: secret, salt: stored.salt, hash: stored.hash) ? stored.client : nil
        }
    }
}

/// Row mapping of `oauth_clients`.
///
/// Secrets are 32 random bytes (hex), so a salted HMAC-SHA256 (key = 16-byte random salt)
/// is enough: key stretching such as PBKDF2 protects low-entropy human passwords, which
/// these are not.
enum OAuthClientsTable {
    struct Stored {
        var client: OAuthClient
        var salt: [UInt8]
        var hash: [UInt8]
    }

    static func validate(clientID: String, tokenValidityMinutes: Int) throws {
        guard !clientID.isEmpty, clientID.count <= 128, clientID.allSatisfy({ $0.isASCII && !$0.isWhitespace && $0 != ":" })
        else {
            throw StoreError.invalidValue(
                field: "clientID", reason: "1–128 printable ASCII characters without ':' (RFC 6749 §2.3.1)")
        }
        guard tokenValidityMinutes >= 0 else {
            throw StoreError.invalidValue(field: "tokenValidityMinutes", reason: "must not be negative")
        }
    }

    static func generateSecret() -> String { Secrets.randomHex(byteCount: 32) }

    static func hash(secret: String, salt: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Data(secret.utf8), using: SymmetricKey(data: salt)))
    }

    static func matches(secret: String, salt: [UInt8], hash: [UInt8]) -> Bool {
        HMAC<SHA256>.isValidAuthenticationCode(hash, authenticating: Data(secret.utf8), using: SymmetricKey(data: salt))
    }

    static func fetch(_ db: Database, id: String) throws -> Stored? {
        try Row.fetchOne(db, sql: "SELECT * FROM oauth_clients WHERE client_id = ?", arguments: [id]).map(stored)
    }

    static func fetchAll(_ db: Database) throws -> [OAuthClient] {
        try Row.fetchAll(db, sql: "SELECT * FROM oauth_clients ORDER BY client_id").map { stored($0).client }
    }

    /// Inserts a client with a generated secret and returns the plaintext secret.
    static func insert(_ db: Database, id: String, tokenValidityMinutes: Int, now: Date) throws -> String {
        try validate(clientID: id, tokenValidityMinutes: tokenValidityMinutes)
        let secret = generateSecret()
        let salt = Secrets.randomBytes(count: 16)
        try db.execute(
            sql: """
                INSERT INTO oauth_clients (client_id, secret_salt, secret_hash, token_validity_minutes, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                id, Data(salt), Data(hash(secret: secret, salt: salt)), tokenValidityMinutes,
                now.timeIntervalSince1970, now.timeIntervalSince1970,
            ])
        return secret
    }

    private static func stored(_ row: Row) -> Stored {
        let salt: Data = row["secret_salt"]
        let hash: Data = row["secret_hash"]
        return Stored(
            client: OAuthClient(
                clientID: row["client_id"],
                tokenValidityMinutes: row["token_validity_minutes"],
                webRTCSecretEnabled: (row["webrtc_secret"] as String?) != nil,
                createdAt: Date(timeIntervalSince1970: row["created_at"]),
                updatedAt: Date(timeIntervalSince1970: row["updated_at"])),
            salt: Array(salt),
            hash: Array(hash))
    }
}
