import Foundation
import GRDB

/// The TURN server's runtime settings: the single row of `turn_settings`.
///
/// Credentials follow the TURN REST API convention (draft-uberti-behave-turn-rest-00):
/// the server accepts `base64(HMAC-SHA1(secret, "<expiry>:<user>"))` for the current
/// shared secret, and for the previous one until it retires (rotation without cutting
/// off credentials already handed out).
public struct TURNSettings: Sendable, Equatable {
    /// The current shared secret (64 hex digits when generated).
    public var sharedSecret: String
    /// The secret replaced by the last rotation, still accepted until `previousSecretRetiresAt`.
    public var previousSharedSecret: String?
    /// When `previousSharedSecret` stops being accepted.
    public var previousSecretRetiresAt: Date?
    /// The lifetime of issued credentials, in seconds.
    public var credentialTTL: Int
    /// The addresses relayed transport addresses are allocated on (IP address strings).
    public var relayAddresses: [String]
    /// `relayIP=externalIP` mappings or plain external IPs advertised instead of relay addresses.
    public var externalAddresses: [String]
    /// When the row was last written.
    public var updatedAt: Date

    public init(
        sharedSecret: String,
        previousSharedSecret: String? = nil,
        previousSecretRetiresAt: Date? = nil,
        credentialTTL: Int,
        relayAddresses: [String],
        externalAddresses: [String],
        updatedAt: Date = Date()
    ) {
        self.sharedSecret = sharedSecret
        self.previousSharedSecret = previousSharedSecret
        self.previousSecretRetiresAt = previousSecretRetiresAt
        self.credentialTTL = credentialTTL
        self.relayAddresses = relayAddresses
        self.externalAddresses = externalAddresses
        self.updatedAt = updatedAt
    }

    /// The secrets a credential may be signed with at `now`: the current one first,
    /// then the previous one while it has not retired.
    public func acceptedSecrets(at now: Date = Date()) -> [String] {
        var secrets = [sharedSecret]
        if let previous = previousSharedSecret, let retiresAt = previousSecretRetiresAt, now < retiresAt {
            secrets.append(previous)
        }
        return secrets
    }
}

extension Store {
    /// The TURN runtime settings.
    public func turnSettings() async throws -> TURNSettings {
        try await pool.read { db in
            guard let settings = try TURNSettingsTable.fetch(db) else { throw StoreError.missingTURNSettings }
            return settings
        }
    }

    /// Changes the TURN settings in one transaction and returns what was written.
    /// `updatedAt` is set by the store.
    @discardableResult
    public func updateTURNSettings(
        _ modify: @escaping @Sendable (inout TURNSettings) throws -> Void
    ) async throws -> TURNSettings {
        let settings = try await pool.write { db in
            guard var settings = try TURNSettingsTable.fetch(db) else { throw StoreError.missingTURNSettings }
            try modify(&settings)
            settings.updatedAt = Date()
            try TURNSettingsTable.save(db, settings)
            return settings
        }
        logger.info(
            "Updated TURN settings",
            metadata: [
                "credential-ttl": "\(settings.credentialTTL)",
                "relay-addresses": "\(settings.relayAddresses.joined(separator: ","))",
                "external-addresses": "\(settings.externalAddresses.joined(separator: ","))",
            ])
        return settings
    }

    /// Replaces the shared secret with `secret` (nil: a new random one); the old one stays
    /// accepted for `gracePeriod` seconds (use at least the credential TTL so issued
    /// credentials stay valid).
    @discardableResult
    public func rotateTURNSharedSecret(to secret: String? = nil, gracePeriod: TimeInterval, now: Date = Date()) async throws -> TURNSettings {
        guard gracePeriod >= 0 else {
            throw StoreError.invalidValue(field: "gracePeriod", reason: "must not be negative")
        }
        if let secret {
            guard (16...256).contains(secret.utf8.count), secret.allSatisfy({ $0.isASCII && !$0.isWhitespace && !$0.isNewline && $0.asciiValue.map { $0 >= 0x21 && $0 < 0x7f } == true })
            else { throw StoreError.invalidValue(field: "shared secret", reason: "16–256 printable ASCII characters without spaces") }
        }
        let settings = try await pool.write { db in
            guard var settings = try TURNSettingsTable.fetch(db) else { throw StoreError.missingTURNSettings }
            settings.previousSharedSecret = settings.sharedSecret
            settings.previousSecretRetiresAt = now.addingTimeInterval(gracePeriod)
            settings.sharedSecret = secret ?? Secrets.randomHex(byteCount: 32)
            settings.updatedAt = now
            try TURNSettingsTable.save(db, settings)
            return settings
        }
        logger.notice(
            "Rotated the TURN shared secret",
            metadata: ["previous-retires-at": "\(settings.previousSecretRetiresAt.map { "\($0)" } ?? "-")"])
        return settings
    }
}

/// Row mapping of `turn_settings`.
enum TURNSettingsTable {
    static func validate(credentialTTL: Int) throws {
        guard credentialTTL > 0 else {
            throw StoreError.invalidValue(field: "credentialTTL", reason: "must be positive, got \(credentialTTL)")
        }
    }

    static func fetch(_ db: Database) throws -> TURNSettings? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM turn_settings WHERE id = 1") else { return nil }
        return TURNSettings(
            sharedSecret: row["shared_secret"],
            previousSharedSecret: row["previous_shared_secret"],
            previousSecretRetiresAt: (row["previous_secret_retires_at"] as Double?).map(Date.init(timeIntervalSince1970:)),
            credentialTTL: row["credential_ttl"],
            relayAddresses: try decodeList(row["relay_addresses"], column: "relay_addresses"),
            externalAddresses: try decodeList(row["external_addresses"], column: "external_addresses"),
            updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
    }

    static func save(_ db: Database, _ settings: TURNSettings) throws {
        try validate(credentialTTL: settings.credentialTTL)
        guard !settings.sharedSecret.isEmpty else {
            throw StoreError.invalidValue(field: "sharedSecret", reason: "must not be empty")
        }
        try db.execute(
            sql: """
                INSERT INTO turn_settings (id, shared_secret, previous_shared_secret, previous_secret_retires_at,
                                           credential_ttl, relay_addresses, external_addresses, updated_at)
                VALUES (1, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET
                    shared_secret = excluded.shared_secret,
                    previous_shared_secret = excluded.previous_shared_secret,
                    previous_secret_retires_at = excluded.previous_secret_retires_at,
                    credential_ttl = excluded.credential_ttl,
                    relay_addresses = excluded.relay_addresses,
                    external_addresses = excluded.external_addresses,
                    updated_at = excluded.updated_at
                """,
            arguments: [
                settings.sharedSecret,
                settings.previousSharedSecret,
                settings.previousSecretRetiresAt?.timeIntervalSince1970,
                settings.credentialTTL,
                try encodeList(settings.relayAddresses),
                try encodeList(settings.externalAddresses),
                settings.updatedAt.timeIntervalSince1970,
            ])
    }

    private static func encodeList(_ list: [String]) throws -> String {
        String(decoding: try JSONEncoder().encode(list), as: UTF8.self)
    }

    private static func decodeList(_ text: String, column: String) throws -> [String] {
        do {
            return try JSONDecoder().decode([String].self, from: Data(text.utf8))
        } catch {
            throw StoreError.invalidValue(field: column, reason: "not a JSON array of strings: \(text)")
        }
    }
}
