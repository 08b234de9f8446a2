import Crypto
import Foundation
import GRDB

/// A browser session an application server asked for (DESIGN.md "Interfaces"): the extension
/// it holds while alive, the client that made it, and when it ends. Its token is a random
/// 32-byte bearer secret; only its SHA-256 is stored.
public struct SessionRecord: Sendable, Equatable {
    public var id: String
    public var `extension`: String?
    /// A guest session (click-to-contact): the caller's number and the service it may call.
    public var guest: Guest?
    public var clientID: String
    public var createdAt: Date
    public var expiresAt: Date

    public struct Guest: Sendable, Equatable {
        public var from: String
        public var service: ServiceRecord
    }
}

/// A destination guests may call (click-to-contact): its key, the number on the platform
/// (through the trunk), and the name shown to the caller.
public struct ServiceRecord: Sendable, Equatable {
    public var key: String
    public var number: String
    public var displayName: String

    public init(key: String, number: String, displayName: String = "") {
        self.key = key
        self.number = number
        self.displayName = displayName
    }
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
            return try Self.insertSession(db, tokenHash: hash, extension: number, clientID: clientID, now: now, expiresAt: now.addingTimeInterval(lifetime))
        }
        logger.info("Session created", metadata: ["session": "\(record.id)", "extension": "\(record.extension ?? "-")", "client-id": "\(clientID)"])
        return (record, token)
    }

    static func insertSession(_ db: Database, tokenHash: Data, extension number: String, clientID: String, now: Date, expiresAt: Date) throws -> SessionRecord {
        let record = SessionRecord(id: UUID().uuidString.lowercased(), extension: number, guest: nil, clientID: clientID, createdAt: now, expiresAt: expiresAt)
        try db.execute(
            sql: "INSERT INTO sessions (id, token_hash, extension, client_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [record.id, tokenHash, number, clientID, now.timeIntervalSince1970, expiresAt.timeIntervalSince1970])
        return record
    }

    /// The session of a ``SignedSessionToken``: the one its first use made, or a new one
    /// holding its extension until its expiry once the signature checks out with the client's
    /// WebRTC secret. One transaction. Throws ``SignedSessionToken/Problem`` or
    /// ``StoreError/unknownExtension(_:)`` / ``StoreError/extensionInUse(_:)``.
    public func session(signedToken text: String, now: Date = Date()) async throws -> SessionRecord {
        let token = try SignedSessionToken(parsing: text)
        let hash = Data(SHA256.hash(data: Data(text.utf8)))
        let (record, created) = try await pool.write { db -> (SessionRecord, Bool) in
            guard let client = try Row.fetchOne(db, sql: "SELECT webrtc_secret FROM oauth_clients WHERE client_id = ?", arguments: [token.clientID]) else {
                throw SignedSessionToken.Problem.unknownClient
            }
            guard let secret: String = client["webrtc_secret"] else { throw SignedSessionToken.Problem.noWebRTCSecret }
            try token.verify(secret: secret, now: now)
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at <= ?", arguments: [now.timeIntervalSince1970])
            if let existing = try Row.fetchOne(db, sql: "\(Self.sessionQuery) WHERE s.token_hash = ?", arguments: [hash]).map(Self.session) { return (existing, false) }
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM extensions WHERE extension = ?", arguments: [token.extension]) == true else {
                throw StoreError.unknownExtension(token.extension)
            }
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sessions WHERE extension = ?", arguments: [token.extension]) != true else {
                throw StoreError.extensionInUse(token.extension)
            }
            return (try Self.insertSession(db, tokenHash: hash, extension: token.extension, clientID: token.clientID, now: now,
                                           expiresAt: Date(timeIntervalSince1970: TimeInterval(token.expires))), true)
        }
        if created {
            logger.info("Session created from a signed token", metadata: ["session": "\(record.id)", "extension": "\(token.extension)", "client-id": "\(token.clientID)"])
        }
        return record
    }

    /// A guest session for `from` allowed to call the service `key`, for `lifetime` seconds.
    public func createGuestSession(from: String, service key: String, clientID: String, lifetime: TimeInterval, now: Date = Date()) async throws -> (SessionRecord, token: String) {
        let token = Self.base64URL(Secrets.randomBytes(count: 32))
        let hash = Data(SHA256.hash(data: Data(token.utf8)))
        let record = try await pool.write { db -> SessionRecord in
            try db.execute(sql: "DELETE FROM sessions WHERE expires_at <= ?", arguments: [now.timeIntervalSince1970])
            guard let service = try Row.fetchOne(db, sql: "SELECT * FROM services WHERE key = ?", arguments: [key]).map(Self.service) else {
                throw StoreError.unknownService(key)
            }
            let record = SessionRecord(id: UUID().uuidString.lowercased(), extension: nil, guest: .init(from: from, service: service), clientID: clientID,
                                       createdAt: now, expiresAt: now.addingTimeInterval(lifetime))
            try db.execute(
                sql: "INSERT INTO sessions (id, token_hash, extension, client_id, created_at, expires_at, guest_from, guest_service) VALUES (?, ?, NULL, ?, ?, ?, ?, ?)",
                arguments: [record.id, hash, clientID, now.timeIntervalSince1970, record.expiresAt.timeIntervalSince1970, from, key])
            return record
        }
        logger.info("Guest session created", metadata: ["session": "\(record.id)", "service": "\(key)", "client-id": "\(clientID)"])
        return (record, token)
    }

    /// Adds or replaces a service.
    public func putService(_ service: ServiceRecord) async throws {
        try service.validate()
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO services (key, number, display_name) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET number = excluded.number, display_name = excluded.display_name",
                           arguments: [service.key, service.number, service.displayName])
        }
    }

    /// The services, by key.
    public func services() async throws -> [ServiceRecord] {
        try await pool.read { db in try Row.fetchAll(db, sql: "SELECT * FROM services ORDER BY key").map(Self.service) }
    }

    /// Removes a service (its guest sessions end with it); whether it existed.
    @discardableResult
    public func removeService(key: String) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "DELETE FROM services WHERE key = ?", arguments: [key])
            return db.changesCount > 0
        }
    }

    /// The live sessions, oldest first.
    public func sessions(now: Date = Date()) async throws -> [SessionRecord] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "\(Self.sessionQuery) WHERE s.expires_at > ? ORDER BY s.created_at", arguments: [now.timeIntervalSince1970]).map(Self.session)
        }
    }

    /// The live session of a token (for the signalling socket), or nil.
    public func session(token: String, now: Date = Date()) async throws -> SessionRecord? {
        let hash = Data(SHA256.hash(data: Data(token.utf8)))
        return try await pool.read { db in
            try Row.fetchOne(db, sql: "\(Self.sessionQuery) WHERE s.token_hash = ? AND s.expires_at > ?", arguments: [hash, now.timeIntervalSince1970]).map(Self.session)
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

    /// Sessions with their guest's service.
    static let sessionQuery = "SELECT s.*, v.number AS service_number, v.display_name AS service_name FROM sessions s LEFT JOIN services v ON v.key = s.guest_service"

    static func session(_ row: Row) -> SessionRecord {
        var guest: SessionRecord.Guest?
        if let from: String = row["guest_from"], let key: String = row["guest_service"], let number: String = row["service_number"] {
            guest = .init(from: from, service: ServiceRecord(key: key, number: number, displayName: row["service_name"] ?? ""))
        }
        return SessionRecord(id: row["id"], extension: row["extension"], guest: guest, clientID: row["client_id"],
                             createdAt: Date(timeIntervalSince1970: row["created_at"]), expiresAt: Date(timeIntervalSince1970: row["expires_at"]))
    }

    static func service(_ row: Row) -> ServiceRecord {
        ServiceRecord(key: row["key"], number: row["number"], displayName: row["display_name"])
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
