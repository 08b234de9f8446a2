import Logging
import Synchronization

/// The log level of each subsystem (swift-log's `source`: the module that logs, as
/// `[SIPUA]` shows it), changed while running; subsystems without their own level use the
/// default. Handlers ask for the lowest level in force, so a message below every level costs
/// one atomic load.
public final class LogLevels: Sendable {
    /// The subsystems an administrator can set, with what each covers.
    public static let subsystems: [(source: String, covers: String)] = [
        ("TURN", "TURN relay"), ("STUN", "STUN codec"), ("SIP", "SIP messages and transactions"), ("SIPUA", "registrations and calls"),
        ("Gateway", "bridged calls"), ("WebRTC", "ICE, DTLS, SRTP"), ("Media", "transcoding"), ("Datapath", "media threads"),
        ("ControlAPI", "HTTPS API and signalling"), ("Admin", "/cms"), ("Store", "database"), ("TandemKit", "services"),
    ]

    private let state: Mutex<(fallback: Logger.Level, bySource: [String: Logger.Level])>
    private let lowest: Atomic<Int>

    public init(default level: Logger.Level) {
        state = Mutex((level, [:]))
        lowest = Atomic(Self.rank(level))
    }

    /// The level of messages from `source`.
    public func level(for source: String) -> Logger.Level {
        state.withLock { $0.bySource[source] ?? $0.fallback }
    }

    /// The default level and the subsystems that differ from it.
    public var current: (fallback: Logger.Level, bySource: [String: Logger.Level]) { state.withLock { $0 } }

    /// The lowest level any subsystem logs at.
    public var lowestLevel: Logger.Level { Logger.Level.allCases[lowest.load(ordering: .relaxed)] }

    /// Sets the default and the per-subsystem levels (subsystems not named use the default).
    public func set(default level: Logger.Level, bySource: [String: Logger.Level]) {
        state.withLock { $0 = (level, bySource) }
        lowest.store(Self.rank(([level] + Array(bySource.values)).min() ?? level), ordering: .relaxed)
    }

    static func rank(_ level: Logger.Level) -> Int { Logger.Level.allCases.firstIndex(of: level) ?? 2 }
}

/// Passes on what its subsystem's level (``LogLevels``) lets through.
struct LevelFilterLogHandler: LogHandler {
    var inner: any LogHandler
    let levels: LogLevels

    var logLevel: Logger.Level {
        get { levels.lowestLevel }
        set {}  // the levels are set through ``LogLevels``
    }

    var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.level >= levels.level(for: event.source) else { return }
        inner.log(event: event)
    }
}
