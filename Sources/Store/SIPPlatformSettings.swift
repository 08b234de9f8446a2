import Foundation
import GRDB

/// The SIP platform (PBX or trunk) as an administrator set it in /cms: the registrars/proxies
/// the extensions register with (RFC 3261 §10), the transport toward them, an outbound proxy
/// (§8.1.2), the domain of the addresses-of-record, the registration expiry and the OPTIONS
/// keep-alive interval. While no row exists the configuration file's `sip.*` keys apply.
///
/// The Store keeps the values as text; TandemKit parses and resolves them.
public struct SIPPlatformSettings: Sendable, Equatable, Codable {
    /// `host[:port]` of the primary registrar/proxy.
    public var primary: String
    /// `host[:port]` of the secondary, empty for none.
    public var secondary: String
    /// `udp`, `tcp` or `tls`.
    public var transport: String
    /// `host[:port]` every request goes to instead, empty for none.
    public var outboundProxy: String
    /// The host part of the addresses-of-record; empty: the primary's host.
    public var domain: String
    /// Seconds asked for in REGISTER (300–86400).
    public var registrationExpires: Int
    /// Seconds between OPTIONS keep-alives (0 = none, at most 3600).
    public var keepAliveInterval: Int
    /// When the row was last written (not part of an export file).
    public var updatedAt = Date()

    enum CodingKeys: String, CodingKey {
        case primary, secondary, transport, outboundProxy, domain, registrationExpires, keepAliveInterval
    }

    public static let transports = ["udp", "tcp", "tls"]
    public static let registrationExpiresRange = 300...86_400
    public static let keepAliveRange = 0...3600

    public init(primary: String, secondary: String = "", transport: String = "udp", outboundProxy: String = "", domain: String = "",
                registrationExpires: Int = 600, keepAliveInterval: Int = 30, updatedAt: Date = Date()) {
        self.primary = primary
        self.secondary = secondary
        self.transport = transport
        self.outboundProxy = outboundProxy
        self.domain = domain
        self.registrationExpires = registrationExpires
        self.keepAliveInterval = keepAliveInterval
        self.updatedAt = updatedAt
    }

    /// Whether `other` names the same platform (its time of writing aside).
    public func samePlatform(as other: SIPPlatformSettings?) -> Bool {
        guard let other else { return false }
        var a = self, b = other
        a.updatedAt = .distantPast
        b.updatedAt = .distantPast
        return a == b
    }

    /// The first bound a value breaks, as the field and the reason (nil: none).
    public func violation() -> (field: String, reason: String)? {
        if primary.isEmpty { return ("primary", "a primary registrar is needed") }
        if !Self.transports.contains(transport) { return ("transport", "udp, tcp or tls") }
        if !Self.registrationExpiresRange.contains(registrationExpires) { return ("expires", "300 to 86400 seconds") }
        if !Self.keepAliveRange.contains(keepAliveInterval) { return ("keepalive", "0 (none) to 3600 seconds") }
        for (field, value) in [("primary", primary), ("secondary", secondary), ("proxy", outboundProxy), ("domain", domain)] where value.utf8.count > 255 {
            return (field, "at most 255 characters")
        }
        return nil
    }
}

extension Store {
    /// The platform set in /cms, or nil when the configuration file applies.
    public func sipPlatformSettings() async throws -> SIPPlatformSettings? {
        try await pool.read { db in try SIPPlatformTable.fetch(db) }
    }

    /// The same, read at once (for start-up, before any task runs).
    public func sipPlatformSettingsNow() throws -> SIPPlatformSettings? {
        try pool.read { db in try SIPPlatformTable.fetch(db) }
    }

    /// Stores `settings` (validated; `updatedAt` set here) and returns what was written.
    @discardableResult
    public func saveSIPPlatformSettings(_ settings: SIPPlatformSettings) async throws -> SIPPlatformSettings {
        var settings = settings
        if let (field, reason) = settings.violation() { throw StoreError.invalidValue(field: field, reason: reason) }
        settings.updatedAt = Date()
        try await pool.write { [settings] db in try SIPPlatformTable.save(db, settings) }
        logger.info("Updated the SIP platform", metadata: ["primary": "\(settings.primary)", "transport": "\(settings.transport)"])
        return settings
    }

    /// Removes the /cms platform: the configuration file's `sip.*` apply again.
    public func clearSIPPlatformSettings() async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM sip_platform") }
        logger.info("The SIP platform follows the configuration file again")
    }
}

/// Row mapping of `sip_platform`.
enum SIPPlatformTable {
    static func fetch(_ db: Database) throws -> SIPPlatformSettings? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM sip_platform WHERE id = 1") else { return nil }
        return SIPPlatformSettings(
            primary: row["platform_primary"], secondary: row["platform_secondary"], transport: row["platform_transport"],
            outboundProxy: row["outbound_proxy"], domain: row["domain"], registrationExpires: row["registration_expires"],
            keepAliveInterval: row["keep_alive_interval"], updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
    }

    static func save(_ db: Database, _ s: SIPPlatformSettings) throws {
        try db.execute(
            sql: """
                INSERT INTO sip_platform (id, platform_primary, platform_secondary, platform_transport, outbound_proxy, domain,
                                          registration_expires, keep_alive_interval, updated_at)
                VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET
                    platform_primary = excluded.platform_primary, platform_secondary = excluded.platform_secondary,
                    platform_transport = excluded.platform_transport, outbound_proxy = excluded.outbound_proxy,
                    domain = excluded.domain, registration_expires = excluded.registration_expires,
                    keep_alive_interval = excluded.keep_alive_interval, updated_at = excluded.updated_at
                """,
            arguments: [s.primary, s.secondary, s.transport, s.outboundProxy, s.domain, s.registrationExpires, s.keepAliveInterval,
                        s.updatedAt.timeIntervalSince1970])
    }
}
