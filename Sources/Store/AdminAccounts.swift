import Crypto
import Foundation
import GRDB

/// An administrator of the web configuration (`/cms`). The password is not part of it: the
/// store keeps only the encoded output of a password hash the caller computed (the Admin
/// module's scrypt), which it never interprets.
public struct AdminAccount: Sendable, Equatable {
    public var name: String
    /// The encoded password hash (`scrypt$…`).
    public var passwordHash: String
    public var createdAt: Date
    public var passwordChangedAt: Date
}

/// A signed-in administrator's browser session. Its token lives only in the browser's cookie;
/// the store keeps the token's SHA-256 and the session's CSRF token (every form carries it).
public struct AdminSessionRecord: Sendable, Equatable {
    public var account: String
    public var csrfToken: String
    /// The address the session was opened from.
    public var source: String
    public var createdAt: Date
    public var lastSeenAt: Date
}

/// One line of the audit log: who did what, from where, when.
public struct AuditEntry: Sendable, Equatable {
    public var id: Int64
    public var at: Date
    /// nil for events without a signed-in account (a failed sign-in names the account tried in `detail`).
    public var account: String?
    public var source: String
    public var action: String
    public var detail: String
}

extension Store {
    /// How many administrator accounts exist (none: `/cms` shows how to create the first).
    public func adminAccountCount() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT count(*) FROM admin_accounts") ?? 0 }
    }

    /// All administrator accounts, by name.
    public func adminAccounts() async throws -> [AdminAccount] {
        try await pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM admin_accounts ORDER BY name").map(AdminTables.account) }
    }

    /// The account with this name, if any.
    public func adminAccount(name: String) async throws -> AdminAccount? {
        try await pool.read { db in try AdminTables.account(db, name: name) }
    }

    /// Creates an account; throws ``StoreError/duplicateAdmin(_:)`` when the name is taken.
    public func createAdminAccount(name: String, passwordHash: String, now: Date = Date()) async throws {
        try AdminTables.validate(name: name)
        try await pool.write { db in
            guard try AdminTables.account(db, name: name) == nil else { throw StoreError.duplicateAdmin(name) }
            try db.execute(
                sql: "INSERT INTO admin_accounts (name, password_hash, created_at, password_changed_at) VALUES (?, ?, ?, ?)",
                arguments: [name, passwordHash, now.timeIntervalSince1970, now.timeIntervalSince1970])
        }
        logger.notice("Created administrator", metadata: ["account": "\(name)"])
    }

    /// Replaces an account's password hash and ends all its sessions (a reset locks out whoever
    /// knew the old password).
    public func setAdminPassword(name: String, passwordHash: String, now: Date = Date()) async throws {
        try await pool.write { db in
            guard try AdminTables.account(db, name: name) != nil else { throw StoreError.unknownAdmin(name) }
            try db.execute(
                sql: "UPDATE admin_accounts SET password_hash = ?, password_changed_at = ? WHERE name = ?",
                arguments: [passwordHash, now.timeIntervalSince1970, name])
            try db.execute(sql: "DELETE FROM admin_sessions WHERE account = ?", arguments: [name])
        }
        logger.notice("Reset administrator password", metadata: ["account": "\(name)"])
    }

    /// Removes an account and its sessions; false when there was none.
    public func deleteAdminAccount(name: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM admin_accounts WHERE name = ?", arguments: [name])
            return db.changesCount > 0
        }
    }

    /// Opens a session for `account` and returns it with its token (for the cookie; not stored).
    public func createAdminSession(account: String, source: String, now: Date = Date()) async throws -> (AdminSessionRecord, token: String) {
        let token = Self.base64URL(Secrets.randomBytes(count: 32))
        let record = AdminSessionRecord(account: account, csrfToken: Self.base64URL(Secrets.randomBytes(count: 24)), source: source, createdAt: now, lastSeenAt: now)
        try await pool.write { db in
            guard try AdminTables.account(db, name: account) != nil else { throw StoreError.unknownAdmin(account) }
            try db.execute(
                sql: "INSERT INTO admin_sessions (token_hash, account, csrf_token, source, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?)",
                arguments: [AdminTables.hash(token), account, record.csrfToken, source, now.timeIntervalSince1970, now.timeIntervalSince1970])
        }
        return (record, token)
    }

    /// The live session of `token`, its last use moved to `now`; nil when there is none or it has
    /// expired (idle for `idleTimeout` seconds, or older than `lifetime`), and expired sessions
    /// are removed.
    public func adminSession(token: String, idleTimeout: TimeInterval, lifetime: TimeInterval, now: Date = Date()) async throws -> AdminSessionRecord? {
        let t = now.timeIntervalSince1970
        return try await pool.write { db in
            try db.execute(sql: "DELETE FROM admin_sessions WHERE last_seen_at <= ? OR created_at <= ?", arguments: [t - idleTimeout, t - lifetime])
            let hash = AdminTables.hash(token)
            guard let row = try Row.fetchOne(db, sql: "SELECT * FROM admin_sessions WHERE token_hash = ?", arguments: [hash]) else { return nil }
            try db.execute(sql: "UPDATE admin_sessions SET last_seen_at = ? WHERE token_hash = ?", arguments: [t, hash])
            var record = AdminTables.session(row)
            record.lastSeenAt = now
            return record
        }
    }

    /// Ends the session of `token`; false when there was none.
    public func deleteAdminSession(token: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM admin_sessions WHERE token_hash = ?", arguments: [AdminTables.hash(token)])
            return db.changesCount > 0
        }
    }

    /// Appends to the audit log; entries beyond `retain` (the newest kept) are removed.
    public func appendAudit(account: String?, source: String, action: String, detail: String = "", now: Date = Date(), retain: Int = 100_000) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO audit_log (at, account, source, action, detail) VALUES (?, ?, ?, ?, ?)",
                arguments: [now.timeIntervalSince1970, account, String(source.prefix(128)), String(action.prefix(64)), String(detail.prefix(2000))])
            let id = db.lastInsertedRowID
            if id % 1000 == 0 {
                try db.execute(sql: "DELETE FROM audit_log WHERE id <= ?", arguments: [id - Int64(retain)])
            }
        }
    }

    /// The newest audit entries first: `limit` of them after skipping `offset`.
    public func auditLog(limit: Int, offset: Int = 0) async throws -> [AuditEntry] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit_log ORDER BY id DESC LIMIT ? OFFSET ?", arguments: [max(0, limit), max(0, offset)]).map { row in
                AuditEntry(id: row["id"], at: Date(timeIntervalSince1970: row["at"]), account: row["account"], source: row["source"], action: row["action"], detail: row["detail"])
            }
        }
    }
}

/// Row mapping of `admin_accounts` and `admin_sessions`.
enum AdminTables {
    /// Names an operator types: letters, digits and `. _ @ -`, 1–64 characters.
    static func validate(name: String) throws {
        guard (1...64).contains(name.utf8.count),
              name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._@-".unicodeScalars.contains($0)) })
        else { throw StoreError.invalidValue(field: "name", reason: "1–64 letters, digits or . _ @ -") }
    }

    static func hash(_ token: String) -> Data { Data(SHA256.hash(data: Data(token.utf8))) }

    static func account(_ db: Database, name: String) throws -> AdminAccount? {
        try Row.fetchOne(db, sql: "SELECT * FROM admin_accounts WHERE name = ?", arguments: [name]).map(account)
    }

    static func account(_ row: Row) -> AdminAccount {
        AdminAccount(name: row["name"], passwordHash: row["password_hash"], createdAt: Date(timeIntervalSince1970: row["created_at"]),
                     passwordChangedAt: Date(timeIntervalSince1970: row["password_changed_at"]))
    }

    static func session(_ row: Row) -> AdminSessionRecord {
        AdminSessionRecord(account: row["account"], csrfToken: row["csrf_token"], source: row["source"],
                           createdAt: Date(timeIntervalSince1970: row["created_at"]), lastSeenAt: Date(timeIntervalSince1970: row["last_seen_at"]))
    }
}
