import Foundation
import GRDB

/// The payload configuration an administrator set in /cms: SRTP on the SIP leg (SDES,
/// RFC 4568: `off`, `preferred`, `required`), the audio codecs the SIP leg offers and
/// accepts, in order (`opus`, RFC 7587; `pcmu`, `pcma`, RFC 3551), and the video codecs in
/// order (`vp8`, `vp9`, `h264`; for when video is relayed). While no row exists the
/// configuration file's `sip.srtp` and `media.sip-codec` apply.
public struct PayloadSettings: Sendable, Equatable {
    public var srtpMode: String
    /// Enabled audio codecs of the SIP leg, preferred first.
    public var audioCodecs: [String]
    /// Enabled video codecs, preferred first (none: video declined).
    public var videoCodecs: [String]
    public var updatedAt: Date

    public static let srtpModes = ["off", "preferred", "required"]
    public static let audioCodecNames = ["opus", "pcmu", "pcma"]
    public static let videoCodecNames = ["vp8", "vp9", "h264"]

    public init(srtpMode: String, audioCodecs: [String], videoCodecs: [String] = ["vp8"], updatedAt: Date = Date()) {
        self.srtpMode = srtpMode
        self.audioCodecs = audioCodecs
        self.videoCodecs = videoCodecs
        self.updatedAt = updatedAt
    }

    /// The audio codecs the configuration file's `media.sip-codec` gives: that one first and
    /// both G.711 laws (µ-law before A-law otherwise); Opus only when it is the one named.
    public static func audioCodecs(first: String) -> [String] {
        let laws = ["pcmu", "pcma"]
        return first == "opus" ? ["opus"] + laws : laws.contains(first) ? [first] + laws.filter { $0 != first } : laws
    }

    /// The first bound a value breaks, as the field and the reason (nil: none).
    public func violation() -> (field: String, reason: String)? {
        if !Self.srtpModes.contains(srtpMode) { return ("srtp", "off, preferred or required") }
        if audioCodecs.isEmpty { return ("codecs", "at least one audio codec must be enabled") }
        if Set(audioCodecs).count != audioCodecs.count || !audioCodecs.allSatisfy(Self.audioCodecNames.contains) {
            return ("codecs", "each of opus, pcmu and pcma at most once")
        }
        if Set(videoCodecs).count != videoCodecs.count || !videoCodecs.allSatisfy(Self.videoCodecNames.contains) {
            return ("video", "each of vp8, vp9 and h264 at most once")
        }
        return nil
    }
}

extension Store {
    /// The payload settings set in /cms, or nil when the configuration file applies.
    public func payloadSettings() async throws -> PayloadSettings? {
        try await pool.read { db in try PayloadTable.fetch(db) }
    }

    /// The same, read at once (for start-up).
    public func payloadSettingsNow() throws -> PayloadSettings? {
        try pool.read { db in try PayloadTable.fetch(db) }
    }

    /// Stores `settings` (validated; `updatedAt` set here) and returns what was written.
    @discardableResult
    public func savePayloadSettings(_ settings: PayloadSettings) async throws -> PayloadSettings {
        var settings = settings
        if let (field, reason) = settings.violation() { throw StoreError.invalidValue(field: field, reason: reason) }
        settings.updatedAt = Date()
        let row = settings
        try await pool.write { db in try PayloadTable.save(db, row) }
        logger.info("Updated the payload settings", metadata: ["srtp": "\(settings.srtpMode)", "audio-codecs": "\(settings.audioCodecs.joined(separator: ","))",
                                                            "video-codecs": "\(settings.videoCodecs.joined(separator: ","))"])
        return settings
    }

    /// Removes the /cms payload settings: the configuration file's apply again.
    public func clearPayloadSettings() async throws {
        try await pool.write { db in try db.execute(sql: "DELETE FROM payload_settings") }
    }
}

/// Row mapping of `payload_settings`.
enum PayloadTable {
    static func save(_ db: Database, _ row: PayloadSettings) throws {
        try db.execute(
            sql: """
                INSERT INTO payload_settings (id, srtp_mode, audio_codecs, video_codecs, updated_at) VALUES (1, ?, ?, ?, ?)
                ON CONFLICT(id) DO UPDATE SET srtp_mode = excluded.srtp_mode, audio_codecs = excluded.audio_codecs,
                    video_codecs = excluded.video_codecs, updated_at = excluded.updated_at
                """,
            arguments: [row.srtpMode, row.audioCodecs.joined(separator: ","), row.videoCodecs.joined(separator: ","), row.updatedAt.timeIntervalSince1970])
    }

    static func fetch(_ db: Database) throws -> PayloadSettings? {
        guard let row = try Row.fetchOne(db, sql: "SELECT * FROM payload_settings WHERE id = 1") else { return nil }
        let audio: String = row["audio_codecs"], video: String = row["video_codecs"]
        return PayloadSettings(srtpMode: row["srtp_mode"], audioCodecs: audio.split(separator: ",").map(String.init),
                               videoCodecs: video.split(separator: ",").map(String.init), updatedAt: Date(timeIntervalSince1970: row["updated_at"]))
    }
}
