import Crypto
import Foundation
import GRDB

/// A versioned export of a Tandem's extensions and, separately, of its configuration without
/// secrets (services and the TURN credential TTL, relay and external addresses), for moving
/// them between servers. JSON: `{"format": "tandem-export", "version": 1, …}`.
///
/// Importing makes the database hold what the file holds, for each part the file carries:
/// extensions (or services) absent from the file are removed. ``Store/importPlan(_:)`` shows the
/// change first; ``Store/apply(_:expecting:)`` writes it in one transaction or not at all.
public struct TransferDocument: Codable, Sendable, Equatable {
    public static let formatName = "tandem-export"
    public static let currentVersion = 1
    /// Files larger than this are refused before they are parsed.
    public static let maximumSize = 32 << 20

    public var format: String
    public var version: Int
    public var exportedAt: String?
    public var extensions: [Extension]?
    public var configuration: Configuration?

    public struct Extension: Codable, Sendable, Equatable {
        public var `extension`: String
        public var authentication: String
        public var digestUsername: String?
        public var digestPassword: String?
        public var realm: String?

        public init(_ r: ExtensionRecord) {
            self.extension = r.number
            authentication = r.authentication.rawValue
            digestUsername = r.digestUsername.isEmpty ? nil : r.digestUsername
            digestPassword = r.digestPassword.isEmpty ? nil : r.digestPassword
            realm = r.realm.isEmpty ? nil : r.realm
        }

        var record: ExtensionRecord? {
            ExtensionRecord.Authentication(rawValue: authentication).map {
                ExtensionRecord(number: self.extension, authentication: $0, digestUsername: digestUsername ?? "", digestPassword: digestPassword ?? "", realm: realm ?? "")
            }
        }
    }

    /// The runtime configuration without secrets (no TURN secret, no client secrets).
    public struct Configuration: Codable, Sendable, Equatable {
        public var services: [Service]
        public var turn: TURN
        /// The SIP platform set in /cms; absent: the server follows its file (an import leaves it alone).
        public var sipPlatform: SIPPlatformSettings? = nil
        /// The payload settings set in /cms; absent as for ``sipPlatform``.
        public var payload: Payload? = nil
        /// The log levels and retention set in /cms; absent as for ``sipPlatform``.
        public var diagnostics: DiagnosticsSettings? = nil

        public struct Payload: Codable, Sendable, Equatable {
            public var srtpMode: String
            public var audioCodecs: [String]
            /// Absent (a file of an older Tandem): VP8 only.
            public var videoCodecs: [String]?

            var settings: PayloadSettings { PayloadSettings(srtpMode: srtpMode, audioCodecs: audioCodecs, videoCodecs: videoCodecs ?? ["vp8"]) }
        }

        public struct Service: Codable, Sendable, Equatable {
            public var key: String
            public var number: String
            public var displayName: String?
        }

        public struct TURN: Codable, Sendable, Equatable {
            public var credentialTTL: Int
            public var relayAddresses: [String]
            public var externalAddresses: [String]
        }
    }

    /// Why a file cannot be imported.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        case tooLarge(limit: Int)
        case notJSON(String)
        case wrongFormat(String)
        case unsupportedVersion(Int)
        case empty
        case invalid(String)

        public var description: String {
            switch self {
            case .tooLarge(let limit): "the file is larger than \(limit / (1 << 20)) MiB"
            case .notJSON(let detail): "the file is not valid JSON of a Tandem export: \(detail)"
            case .wrongFormat(let format): "the file's format is \"\(format)\", not \"\(TransferDocument.formatName)\""
            case .unsupportedVersion(let v): "the file is version \(v); this Tandem reads version \(TransferDocument.currentVersion)"
            case .empty: "the file holds neither extensions nor configuration"
            case .invalid(let reason): reason
            }
        }
    }

    enum CodingKeys: String, CodingKey {
        case format, version, exportedAt, extensions, configuration
    }

    /// Absent parts are nil; a part given as `null` is an error (the schema says array/object).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        format = try c.decode(String.self, forKey: .format)
        version = try c.decode(Int.self, forKey: .version)
        exportedAt = c.contains(.exportedAt) ? try c.decode(String.self, forKey: .exportedAt) : nil
        extensions = c.contains(.extensions) ? try c.decode([Extension].self, forKey: .extensions) : nil
        configuration = c.contains(.configuration) ? try c.decode(Configuration.self, forKey: .configuration) : nil
    }

    public init(extensions: [ExtensionRecord]?, configuration: Configuration?, exportedAt: Date = Date()) {
        format = Self.formatName
        version = Self.currentVersion
        self.exportedAt = ISO8601DateFormatter().string(from: exportedAt)
        self.extensions = extensions?.map(Extension.init)
        self.configuration = configuration
    }

    /// Parses and checks a whole file: format, version, every extension and service valid,
    /// no number or key twice.
    public static func parse(_ bytes: some Collection<UInt8>) throws(Problem) -> TransferDocument {
        guard bytes.count <= maximumSize else { throw .tooLarge(limit: maximumSize) }
        let document: TransferDocument
        do {
            document = try JSONDecoder().decode(TransferDocument.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw .notJSON(Self.describe(error))
        } catch {
            throw .notJSON("\(error)")
        }
        guard document.format == formatName else { throw .wrongFormat(String(document.format.prefix(64))) }
        guard document.version == currentVersion else { throw .unsupportedVersion(document.version) }
        guard document.extensions != nil || document.configuration != nil else { throw .empty }
        _ = try document.records()
        if let c = document.configuration {
            var keys = Set<String>()
            for s in c.services {
                do { try ServiceRecord(key: s.key, number: s.number, displayName: s.displayName ?? "").validate() } catch { throw .invalid("service \(s.key.prefix(64)): \(error)") }
                guard keys.insert(s.key).inserted else { throw .invalid("service \(s.key.prefix(64)) appears twice") }
                guard (s.displayName ?? "").count <= 128 else { throw .invalid("service \(s.key.prefix(64)): the display name is longer than 128 characters") }
            }
            guard (60...86_400).contains(c.turn.credentialTTL) else { throw .invalid("turn.credentialTTL must be 60–86400 seconds") }
            guard c.turn.relayAddresses.count <= 16, c.turn.externalAddresses.count <= 16,
                  (c.turn.relayAddresses + c.turn.externalAddresses).allSatisfy({ $0.utf8.count <= 100 && !$0.contains(where: \.isWhitespace) })
            else { throw .invalid("turn: at most 16 relay and 16 external addresses, without spaces") }
            if let sip = c.sipPlatform, let (field, reason) = sip.violation() { throw .invalid("sipPlatform.\(field): \(reason)") }
            if let d = c.diagnostics, let (field, reason) = d.violation() { throw .invalid("diagnostics.\(field): \(reason)") }
            if let p = c.payload, let (field, reason) = p.settings.violation() {
                throw .invalid("payload.\(field): \(reason)")
            }
        }
        return document
    }

    /// The extensions as records, checked (nil when the file carries none).
    func records() throws(Problem) -> [ExtensionRecord]? {
        guard let extensions else { return nil }
        guard extensions.count <= ExtensionProvisioning.maximumCount else { throw .invalid("more than \(ExtensionProvisioning.maximumCount) extensions") }
        var seen = Set<String>()
        var out: [ExtensionRecord] = []
        out.reserveCapacity(extensions.count)
        for e in extensions {
            guard let record = e.record else { throw .invalid("extension \(e.extension.prefix(64)): authentication must be digest or none") }
            do { try record.validate() } catch { throw .invalid("\(error)") }
            guard seen.insert(record.number).inserted else { throw .invalid("extension \(record.number) appears twice") }
            out.append(record)
        }
        return out
    }

    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data()
    }

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, let c): "\(path(c.codingPath + [key])) is missing"
        case .typeMismatch(_, let c), .valueNotFound(_, let c): "\(path(c.codingPath)) has the wrong type"
        case .dataCorrupted(let c): c.codingPath.isEmpty ? "not JSON" : "\(path(c.codingPath)) is malformed"
        @unknown default: "unreadable"
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
    }
}

/// What an import would change, part by part.
public struct ImportPlan: Sendable, Equatable, Codable {
    public struct Change: Sendable, Equatable, Codable {
        public var added: [String]
        public var changed: [String]
        public var removed: [String]

        public var isEmpty: Bool { added.isEmpty && changed.isEmpty && removed.isEmpty }
    }

    public var extensions: Change?
    public var services: Change?
    /// The TURN settings that differ (`credentialTTL 600 → 900`).
    public var turn: [String]?
    /// The SIP platform, payload and diagnostics settings that differ (`sipPlatform.primary a → b`).
    public var settings: [String]?
    /// Identifies the database state the plan was made against: ``Store/apply(_:expecting:)``
    /// refuses when it has changed since.
    public var basis: String

    public var isEmpty: Bool {
        (extensions?.isEmpty ?? true) && (services?.isEmpty ?? true) && (turn?.isEmpty ?? true) && (settings?.isEmpty ?? true)
    }
}

/// An applied import: its plan, and the sessions that ended with it (they held an extension or
/// a service the import removed); the gateway should end their calls.
public struct ImportResult: Sendable, Equatable {
    public var plan: ImportPlan
    public var endedSessions: [String]
}

extension ServiceRecord {
    /// Checks a service as ``Store/putService(_:)`` does.
    public func validate() throws(StoreError) {
        guard !key.isEmpty, key.utf8.count <= 64, key.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw .invalidValue(field: "service key", reason: "1–64 letters, digits, - _ .")
        }
        guard !number.isEmpty, number.utf8.count <= 64, !number.contains(where: { $0.isWhitespace || $0 == "@" || $0 == ":" }) else {
            throw .invalidValue(field: "service number", reason: "1–64 characters without spaces, @ or :")
        }
    }
}

extension Store {
    /// The export: extensions and/or the configuration without secrets.
    public func export(extensions: Bool, configuration: Bool) async throws -> TransferDocument {
        var document = try await pool.read { db in try Self.exportInTransaction(db) }
        if !extensions { document.extensions = nil }
        if !configuration { document.configuration = nil }
        return document
    }

    /// What importing `document` would change now.
    public func importPlan(_ document: TransferDocument) async throws -> ImportPlan {
        let current = try await export(extensions: true, configuration: true)
        return try Self.plan(document, against: current)
    }

    static func plan(_ document: TransferDocument, against current: TransferDocument) throws -> ImportPlan {
        func change<T: Equatable>(_ wanted: [T], _ have: [T], key: (T) -> String) -> ImportPlan.Change {
            let old = Dictionary(have.map { (key($0), $0) }, uniquingKeysWith: { a, _ in a })
            let new = Dictionary(wanted.map { (key($0), $0) }, uniquingKeysWith: { a, _ in a })
            return ImportPlan.Change(
                added: wanted.map(key).filter { old[$0] == nil },
                changed: wanted.filter { w in old[key(w)].map { $0 != w } ?? false }.map(key),
                removed: have.map(key).filter { new[$0] == nil })
        }
        var plan = ImportPlan(basis: basis(current))
        if let wanted = document.extensions {
            plan.extensions = change(wanted, current.extensions ?? [], key: \.extension)
        }
        if let c = document.configuration, let have = current.configuration {
            plan.services = change(c.services, have.services, key: \.key)
            var turn: [String] = []
            if c.turn.credentialTTL != have.turn.credentialTTL { turn.append("credentialTTL \(have.turn.credentialTTL) → \(c.turn.credentialTTL)") }
            if c.turn.relayAddresses != have.turn.relayAddresses { turn.append("relayAddresses \(have.turn.relayAddresses) → \(c.turn.relayAddresses)") }
            if c.turn.externalAddresses != have.turn.externalAddresses { turn.append("externalAddresses \(have.turn.externalAddresses) → \(c.turn.externalAddresses)") }
            plan.turn = turn
            var settings: [String] = []
            func differ(_ name: String, _ old: String, _ new: String) {
                if old != new { settings.append("\(name) \(old.isEmpty ? "–" : old) → \(new.isEmpty ? "–" : new)") }
            }
            if let sip = c.sipPlatform {
                let old = have.sipPlatform
                differ("sipPlatform.primary", old?.primary ?? "", sip.primary)
                differ("sipPlatform.secondary", old?.secondary ?? "", sip.secondary)
                differ("sipPlatform.transport", old?.transport ?? "", sip.transport)
                differ("sipPlatform.outboundProxy", old?.outboundProxy ?? "", sip.outboundProxy)
                differ("sipPlatform.domain", old?.domain ?? "", sip.domain)
                differ("sipPlatform.registrationExpires", old.map { String($0.registrationExpires) } ?? "", String(sip.registrationExpires))
                differ("sipPlatform.keepAliveInterval", old.map { String($0.keepAliveInterval) } ?? "", String(sip.keepAliveInterval))
            }
            if let payload = c.payload {
                differ("payload.srtpMode", have.payload?.srtpMode ?? "", payload.srtpMode)
                differ("payload.audioCodecs", have.payload?.audioCodecs.joined(separator: ",") ?? "", payload.audioCodecs.joined(separator: ","))
                differ("payload.videoCodecs", have.payload.map { $0.settings.videoCodecs.joined(separator: ",") } ?? "", payload.settings.videoCodecs.joined(separator: ","))
            }
            if let diagnostics = c.diagnostics {
                let old = have.diagnostics
                let levels = { (d: DiagnosticsSettings) in d.levels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
                differ("diagnostics.defaultLevel", old?.defaultLevel ?? "", diagnostics.defaultLevel)
                differ("diagnostics.levels", old.map(levels) ?? "", levels(diagnostics))
                differ("diagnostics.maxFiles", old.map { String($0.maxFiles) } ?? "", String(diagnostics.maxFiles))
                differ("diagnostics.maxFileSize", old.map { String($0.maxFileSize) } ?? "", String(diagnostics.maxFileSize))
            }
            plan.settings = settings
        }
        return plan
    }

    /// A digest of what an import compares against (extensions, services, TURN settings).
    static func basis(_ current: TransferDocument) -> String {
        var c = current
        c.exportedAt = nil
        return Secrets.hex(SHA256.hash(data: c.encoded()).prefix(12))
    }

    /// Imports `document` in one transaction: for each part it carries, the database ends up
    /// holding exactly what the file holds. With `expecting` (a plan's ``ImportPlan/basis``),
    /// refuses with ``StoreError/changedSincePlan`` when the database changed since that plan.
    @discardableResult
    public func apply(_ document: TransferDocument, expecting basis: String? = nil) async throws -> ImportResult {
        let records = try document.records()
        let result = try await pool.write { db -> ImportResult in
            let current = try Self.exportInTransaction(db)
            let plan = try Self.plan(document, against: current)
            if let basis, basis != plan.basis { throw StoreError.changedSincePlan }
            let sessionsBefore = try String.fetchAll(db, sql: "SELECT id FROM sessions")
            let now = Date().timeIntervalSince1970
            if let records {
                try db.execute(sql: "DELETE FROM extensions WHERE extension NOT IN (SELECT value FROM json_each(?))",
                               arguments: [String(decoding: try JSONEncoder().encode(records.map(\.number)), as: UTF8.self)])
                for r in records {
                    try db.execute(
                        sql: """
                            INSERT INTO extensions (extension, authentication, digest_username, digest_password, realm, created_at, updated_at)
                            VALUES (?, ?, ?, ?, ?, ?, ?)
                            ON CONFLICT(extension) DO UPDATE SET authentication = excluded.authentication, digest_username = excluded.digest_username,
                                digest_password = excluded.digest_password, realm = excluded.realm, updated_at = excluded.updated_at
                            WHERE authentication IS NOT excluded.authentication OR digest_username IS NOT excluded.digest_username
                                OR digest_password IS NOT excluded.digest_password OR realm IS NOT excluded.realm
                            """,
                        arguments: [r.number, r.authentication.rawValue, r.digestUsername, r.digestPassword, r.realm, now, now])
                }
                try Meta.setValue(db, key: Meta.extensionsChangedKey, value: String(now))
            }
            if let c = document.configuration {
                try db.execute(sql: "DELETE FROM services WHERE key NOT IN (SELECT value FROM json_each(?))",
                               arguments: [String(decoding: try JSONEncoder().encode(c.services.map(\.key)), as: UTF8.self)])
                for s in c.services {
                    try db.execute(sql: "INSERT INTO services (key, number, display_name) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET number = excluded.number, display_name = excluded.display_name",
                                   arguments: [s.key, s.number, s.displayName ?? ""])
                }
                guard var turn = try TURNSettingsTable.fetch(db) else { throw StoreError.missingTURNSettings }
                turn.credentialTTL = c.turn.credentialTTL
                turn.relayAddresses = c.turn.relayAddresses
                turn.externalAddresses = c.turn.externalAddresses
                turn.updatedAt = Date()
                try TURNSettingsTable.save(db, turn)
                if var sip = c.sipPlatform {
                    sip.updatedAt = Date()
                    try SIPPlatformTable.save(db, sip)
                }
                if let diagnostics = c.diagnostics {
                    try Meta.setValue(db, key: Store.diagnosticsKey, value: try Store.encodeDiagnostics(diagnostics))
                }
                if let payload = c.payload {
                    try PayloadTable.save(db, payload.settings)
                }
            }
            let sessionsAfter = Set(try String.fetchAll(db, sql: "SELECT id FROM sessions"))
            return ImportResult(plan: plan, endedSessions: sessionsBefore.filter { !sessionsAfter.contains($0) })
        }
        let plan = result.plan
        logger.notice("Imported", metadata: [
            "extensions": "\(plan.extensions.map { "+\($0.added.count) ~\($0.changed.count) -\($0.removed.count)" } ?? "-")",
            "services": "\(plan.services.map { "+\($0.added.count) ~\($0.changed.count) -\($0.removed.count)" } ?? "-")",
            "ended-sessions": "\(result.endedSessions.count)",
        ])
        return result
    }

    /// Everything an export may hold, read in `db`'s transaction.
    static func exportInTransaction(_ db: Database) throws -> TransferDocument {
        let records = try Row.fetchAll(db, sql: "SELECT extension, authentication, digest_username, digest_password, realm FROM extensions").compactMap { row -> ExtensionRecord? in
            guard let authentication = ExtensionRecord.Authentication(rawValue: row["authentication"]) else { return nil }
            return ExtensionRecord(number: row["extension"], authentication: authentication, digestUsername: row["digest_username"],
                                   digestPassword: row["digest_password"], realm: row["realm"])
        }.sorted { numberOrder($0.number, $1.number) }
        let services = try Row.fetchAll(db, sql: "SELECT * FROM services ORDER BY key").map(Self.service)
        guard let turn = try TURNSettingsTable.fetch(db) else { throw StoreError.missingTURNSettings }
        var configuration = TransferDocument.Configuration(
            services: services.map { .init(key: $0.key, number: $0.number, displayName: $0.displayName.isEmpty ? nil : $0.displayName) },
            turn: .init(credentialTTL: turn.credentialTTL, relayAddresses: turn.relayAddresses, externalAddresses: turn.externalAddresses))
        configuration.sipPlatform = try SIPPlatformTable.fetch(db)
        configuration.payload = try PayloadTable.fetch(db).map { .init(srtpMode: $0.srtpMode, audioCodecs: $0.audioCodecs, videoCodecs: $0.videoCodecs) }
        configuration.diagnostics = try Store.decodeDiagnostics(Meta.value(db, key: Store.diagnosticsKey))
        return TransferDocument(extensions: records, configuration: configuration)
    }
}
