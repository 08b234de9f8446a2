import Foundation
import GRDB

/// A browser extension Tandem registers with the platform as a SIP subscriber: its number
/// (the user part of the address-of-record) and how it authenticates (digest, RFC 8760).
/// The password is stored as given: a digest client needs it (or a per-realm, per-algorithm
/// hash of it) to answer every challenge.
public struct ExtensionRecord: Sendable, Equatable {
    public enum Authentication: String, Sendable, CaseIterable {
        case digest, none
    }

    public var number: String
    public var authentication: Authentication
    public var digestUsername: String
    public var digestPassword: String
    /// The realm the credentials belong to; empty = whichever the platform names.
    public var realm: String

    public init(number: String, authentication: Authentication, digestUsername: String = "", digestPassword: String = "", realm: String = "") {
        self.number = number
        self.authentication = authentication
        self.digestUsername = digestUsername
        self.digestPassword = digestPassword
        self.realm = realm
    }

    /// Checks the fields (bounded, printable, no characters that break a SIP header).
    public func validate() throws(StoreError) {
        guard (1...64).contains(number.utf8.count), number.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.!~*'()&=+$,;?/".contains($0)) }) else {
            throw .invalidValue(field: "extension", reason: "\"\(number)\" must be 1–64 characters of a SIP user part")
        }
        for (field, value) in [("digest username", digestUsername), ("digest password", digestPassword), ("realm", realm)] {
            guard value.utf8.count <= 256, !value.contains(where: { $0.isNewline || $0 == "\"" || $0 == "\\" || $0.asciiValue.map { $0 < 0x20 } == true }) else {
                throw .invalidValue(field: field, reason: "at most 256 characters, without quotes, backslashes or control characters")
            }
        }
        if authentication == .digest, digestUsername.isEmpty || digestPassword.isEmpty {
            throw .invalidValue(field: "digest", reason: "extension \(number) needs a username and a password")
        }
    }
}

extension Store {
    /// Every extension, ordered by number (numerically when both are numbers).
    public func extensions() async throws -> [ExtensionRecord] {
        let records = try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT extension, authentication, digest_username, digest_password, realm FROM extensions").compactMap { row -> ExtensionRecord? in
                guard let authentication = ExtensionRecord.Authentication(rawValue: row["authentication"]) else { return nil }
                return ExtensionRecord(number: row["extension"], authentication: authentication, digestUsername: row["digest_username"],
                                       digestPassword: row["digest_password"], realm: row["realm"])
            }
        }
        return records.sorted { Self.numberOrder($0.number, $1.number) }
    }

    /// Adds extensions in one transaction. Without `replace`, none is written when any exists.
    public func addExtensions(_ records: [ExtensionRecord], replace: Bool = false) async throws {
        for record in records { try record.validate() }
        let now = Date().timeIntervalSince1970
        try await pool.write { db in
            if !replace {
                var existing: [String] = []
                for record in records where try Bool.fetchOne(db, sql: "SELECT 1 FROM extensions WHERE extension = ?", arguments: [record.number]) == true {
                    existing.append(record.number)
                }
                if !existing.isEmpty { throw StoreError.duplicateExtensions(existing) }
            }
            for r in records {
                try db.execute(
                    sql: """
                        INSERT INTO extensions (extension, authentication, digest_username, digest_password, realm, created_at, updated_at)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        ON CONFLICT(extension) DO UPDATE SET authentication = excluded.authentication,
                            digest_username = excluded.digest_username, digest_password = excluded.digest_password,
                            realm = excluded.realm, updated_at = excluded.updated_at
                        """,
                    arguments: [r.number, r.authentication.rawValue, r.digestUsername, r.digestPassword, r.realm, now, now])
            }
            try Meta.setValue(db, key: Meta.extensionsChangedKey, value: String(now))
        }
        logger.notice("Added extensions", metadata: ["count": "\(records.count)", "replace": "\(replace)"])
    }

    /// Removes these extensions; returns how many there were.
    @discardableResult
    public func removeExtensions(_ numbers: [String]) async throws -> Int {
        let removed = try await pool.write { db in
            var removed = 0
            for number in numbers {
                try db.execute(sql: "DELETE FROM extensions WHERE extension = ?", arguments: [number])
                removed += db.changesCount
            }
            try Meta.setValue(db, key: Meta.extensionsChangedKey, value: String(Date().timeIntervalSince1970))
            return removed
        }
        logger.notice("Removed extensions", metadata: ["count": "\(removed)"])
        return removed
    }

    /// Changes with every add or remove: a running server polls it to pick up what the CLI wrote.
    public func extensionsChangeMark() async throws -> String? {
        try await pool.read { db in try Meta.value(db, key: Meta.extensionsChangedKey) }
    }

    static func numberOrder(_ a: String, _ b: String) -> Bool {
        switch (Int(a), Int(b)) {
        case (let x?, let y?): x < y
        default: a < b
        }
    }
}

extension Meta {
    static let extensionsChangedKey = "extensions-changed-at"
}
