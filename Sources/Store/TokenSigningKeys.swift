import Foundation
import GRDB

/// The key that signs the control API's access tokens (HS256, RFC 7518 §3.2): 32 random
/// bytes made on first use and kept, so tokens stay valid across restarts and across nodes
/// that share the database.
public struct TokenSigningKey: Sendable, Equatable {
    public var kid: String
    public var secret: [UInt8]
}

extension Store {
    /// The current signing key, made (in one transaction, so two processes agree) when none exists.
    public func tokenSigningKey() throws -> TokenSigningKey {
        try pool.write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT kid, secret FROM token_signing_keys ORDER BY created_at DESC LIMIT 1") {
                let secret: Data = row["secret"]
                return TokenSigningKey(kid: row["kid"], secret: Array(secret))
            }
            let key = TokenSigningKey(kid: UUID().uuidString.lowercased(), secret: Secrets.randomBytes(count: 32))
            try db.execute(
                sql: "INSERT INTO token_signing_keys (kid, algorithm, secret, created_at) VALUES (?, 'HS256', ?, ?)",
                arguments: [key.kid, Data(key.secret), Date().timeIntervalSince1970])
            return key
        }
    }
}
