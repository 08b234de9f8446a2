import Crypto
import Foundation
import GRDB

/// A browser session an application server asked for (DESIGN.md "Interfaces"): the extension
/// it holds while alive, the client that made it, and when it ends. Its token is a random
/// 32-byte bearer secret; only its SHA-256 is stored.
public struct SessionRecord: Sendable, Equatable {
    public var id: String
    public var `extension`: String?
    public var clientID: String
    public var createdAt: Date
    public var expiresAt: Date
}

extension Store {
    /// Makes a session holding `extension` (nil: the first free one in number order) for
    /// `lifetime` seconds, and returns it with its token (shown once). One transaction: of two
    /// requests for one extension, one wins and the other gets ``StoreError/extensionInUse(_:)``.
    /// Expired sessions are removed first, so their extensions are free again.
    public func createSession(extension wanted: String?, clientID: String, lifetime: TimeInterval, now: Date = Date()) async throws -> (SessionRecord, token: String) {
        let token = Self.base64URL(Secrets.randomBytes(count: 32))
        let hash = Data(SHA256.hash(data: Data(token.utf8)))
        let record = try await pool.write { db -> SessionRecord in
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at <= ?", arguments: [now.timeIntervalSince1970])
            let number: String
            if let wanted {
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM extensions WHERE extension = ?", arguments: [wanted]) == true else {
                    throw StoreError.unknownExtension(wanted)
                }
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sessions WHERE extension = ?", arguments: [wanted]) != true else {
                    throw StoreError.extensionInUse(wanted)
                }
                number = wanted
            } else {
                let free = try String.fetchAll(db, sql: "SELECT extension FROM extensions WHERE extension NOT IN (SELECT extension FROM sessions WHERE extension IS NOT NULL)")
                guard let first = free.sorted(by: Self.numberOrder).first else { throw StoreError.noFreeExtension }
                number = first
            }
            let record = SessionRecord(id: UUID().uuidString.lowercased(), extension: number, clientID: clientID, createdAt: now, expiresAt: now.addingTimeInterval(lifetime))
            try db.execute(
                sql: "INSERT INTO sessions (id, token_hash, extension, client_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [record.id, hash, number, clientID, now.timeIntervalSince1970, record.expiresAt.timeIntervalSince1970])
            return record
        }
        logger.info("Session created", metadata: ["session": "\(record.id)", "extension": "\(record.extension ?? "-")", "client-id": "\(clientID)"])
        return (record, token)
    }

    /// The live sessions, oldest first.
    public func sessions(now: Date = Date()) async throws -> [SessionRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM sessions WHERE expires_at > ? ORDER BY created_at", arguments: [now.timeIntervalSince1970]).map(Self.session)
        }
    }

    /// The live session of a token (for the signalling socket), or nil.
    public func session(token: String, now: Date = Date()) async throws -> SessionRecord? {
        let hash = Data(SHA256.hash(data: Data(token.utf8)))
        return try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE token_hash = ? AND expires_at > ?", arguments: [hash, now.timeIntervalSince1970]).map(Self.session)
        }
    }

    /// Ends a session; whether it existed.
    @discardableResult
    public func deleteSession(id: String) async throws -> Bool {
        let deleted = try await pool.write { db in
            try db.execute(sql: "DELETE FROM sessions WHERE id = ?", arguments: [id])
            return db.changesCount > 0
        }
        if deleted { logger.info("Session deleted", metadata: ["session": "\(id)"]) }
        return deleted
    }

    static func session(_ row: Row) -> SessionRecord {
        SessionRecord(id: row["id"], extension: row["extension"], clientID: row["client_id"],
                      createdAt: Date(timeIntervalSince1970: row["created_at"]), expiresAt: Date(timeIntervalSince1970: row["expires_at"]))
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
