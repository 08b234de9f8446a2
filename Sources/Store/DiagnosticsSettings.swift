import Foundation
import GRDB

/// The diagnostics an administrator set in /cms: the default log level, the subsystems
/// that log at another level, and the log file's retention. While none is stored the
/// configuration file's `log.*` keys apply. Kept as JSON in the `meta` table.
public struct DiagnosticsSettings: Sendable, Equatable, Codable {
    /// swift-log level names (`trace` … `critical`).
    public var defaultLevel: String
    /// Subsystem (the module that logs) → level, for those that differ from the default.
    public var levels: [String: String]
    /// Files kept in all, the live one included (1–100).
    public var maxFiles: Int
    /// Bytes at which the live file rotates (64 KiB – 1 GiB).
    public var maxFileSize: Int

    public static let levelNames = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    public static let maxFilesRange = 1...100
    public static let maxFileSizeRange = 65_536...1_073_741_824

    public init(defaultLevel: String, levels: [String: String] = [:], maxFiles: Int, maxFileSize: Int) {
        self.defaultLevel = defaultLevel
        self.levels = levels
        self.maxFiles = maxFiles
        self.maxFileSize = maxFileSize
    }

    /// The first bound a value breaks, as the field and the reason (nil: none).
    public func violation() -> (field: String, reason: String)? {
        if !Self.levelNames.contains(defaultLevel) { return ("level", "one of \(Self.levelNames.joined(separator: ", "))") }
        for (subsystem, level) in levels.sorted(by: { $0.key < $1.key }) where !Self.levelNames.contains(level) || subsystem.utf8.count > 32 {
            return ("level-\(subsystem)", "one of \(Self.levelNames.joined(separator: ", "))")
        }
        if levels.count > 32 { return ("level", "at most 32 subsystems") }
        if !Self.maxFilesRange.contains(maxFiles) { return ("max-files", "1 to 100 files") }
        if !Self.maxFileSizeRange.contains(maxFileSize) { return ("max-file-size", "64 KiB to 1 GiB") }
        return nil
    }
}

extension Store {
    static let diagnosticsKey = "diagnostics"

    /// The diagnostics set in /cms, or nil when the configuration file applies.
    public func diagnosticsSettings() async throws -> DiagnosticsSettings? {
        try await pool.read { db in try Self.decodeDiagnostics(Meta.value(db, key: Self.diagnosticsKey)) }
    }

    /// Stores `settings` (validated).
    public func saveDiagnosticsSettings(_ settings: DiagnosticsSettings) async throws {
        if let (field, reason) = settings.violation() { throw StoreError.invalidValue(field: field, reason: reason) }
        let text = try Self.encodeDiagnostics(settings)
        try await pool.write { db in try Meta.setValue(db, key: Self.diagnosticsKey, value: text) }
        logger.info("Updated the diagnostics settings", metadata: ["level": "\(settings.defaultLevel)", "subsystems": "\(settings.levels.count)"])
    }

    /// Removes the /cms diagnostics: the configuration file's `log.*` apply again.
    public func clearDiagnosticsSettings() async throws {
        try await pool.write { db in try Meta.setValue(db, key: Self.diagnosticsKey, value: nil) }
    }

    static func encodeDiagnostics(_ settings: DiagnosticsSettings) throws -> String {
        String(decoding: try JSONEncoder().encode(settings), as: UTF8.self)
    }

    static func decodeDiagnostics(_ text: String?) throws -> DiagnosticsSettings? {
        guard let text else { return nil }
        do {
            return try JSONDecoder().decode(DiagnosticsSettings.self, from: Data(text.utf8))
        } catch {
            throw StoreError.invalidValue(field: diagnosticsKey, reason: "not a diagnostics record: \(error)")
        }
    }
}
