#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging

/// A swift-log handler writing one line per event to a ``RotatingLogFile``:
/// `2026-11-23T18:59:00.123Z notice tandem.store: Opened database path=/x first-start=true`.
public struct RotatingFileLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?

    private let label: String
    private let file: RotatingLogFile

    public init(label: String, file: RotatingLogFile, level: Logger.Level = .info, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.file = file
        self.logLevel = level
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let eventMetadata = event.metadata { merged.merge(eventMetadata) { _, new in new } }
        if let error = event.error, merged["error"] == nil { merged["error"] = "\(error)" }
        var line = LogFormat.timestamp()
        line += " \(event.level) \(label): \(event.message)"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(value)"
        }
        line += "\n"
        file.write(line)
    }
}

enum LogFormat {
    /// UTC ISO 8601 with milliseconds, from `clock_gettime` and `gmtime_r`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        let millis = Int32(now.tv_nsec / 1_000_000)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
            + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(millis, 3))Z"
    }
}

/// What `tandem serve` can change about its logging while running: the level of each
/// subsystem and the log file's retention.
public struct LoggingControl: Sendable {
    public let file: RotatingLogFile
    public let levels: LogLevels

    public init(file: RotatingLogFile, levels: LogLevels) {
        self.file = file
        self.levels = levels
    }
}

/// Process-wide logging setup for `tandem serve`.
public enum TandemLogging {
    /// Bootstraps swift-log once per process: every logger writes to standard output and to
    /// the rotating `tandem.log` in `configuration.directory`, at `configuration.level` until
    /// ``LogLevels`` says otherwise per subsystem. Returns the control (close its file on exit).
    @discardableResult
    public static func bootstrap(_ configuration: TandemConfiguration.Log) throws -> LoggingControl {
        let file = try RotatingLogFile(
            directory: configuration.directory, maxFileSize: configuration.maxFileSize, maxFiles: configuration.maxFiles)
        let levels = LogLevels(default: configuration.level)
        LoggingSystem.bootstrap({ label, provider in
            var stdout = StreamLogHandler.standardOutput(label: label, metadataProvider: provider)
            stdout.logLevel = .trace
            let both = MultiplexLogHandler([stdout, RotatingFileLogHandler(label: label, file: file, level: .trace, metadataProvider: provider)])
            return LevelFilterLogHandler(inner: both, levels: levels)
        }, metadataProvider: nil)
        return LoggingControl(file: file, levels: levels)
    }

    /// Bootstraps swift-log for the short CLI commands: standard error only, so standard
    /// output carries just the command's result.
    public static func bootstrapStandardError(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
