import Foundation
import ServiceLifecycle
import Synchronization

/// The last hour of the gateway, one ``Sample`` per ``interval``, for the dashboard's chart.
public final class DashboardHistory: Sendable {
    public struct Sample: Sendable, Equatable {
        public var at: Date
        public var calls: Int
        /// Mean MOS estimate of the calls with media, nil without any.
        public var meanMOS: Double?
        public var turnAllocations: Int
        /// TURN relayed bits per second since the sample before.
        public var turnBitsPerSecond: Double
        /// CPU use since the sample before, in % of one core.
        public var cpuPercent: Double
    }

    public let interval: TimeInterval
    public let span: TimeInterval
    private let samples = Mutex<[Sample]>([])
    private let last = Mutex<(at: Date, snapshot: DashboardSnapshot)?>(nil)

    public init(interval: TimeInterval = 30, span: TimeInterval = 3600) {
        self.interval = interval
        self.span = span
    }

    /// Adds a sample from `snapshot`; rates are against the snapshot added before.
    public func add(_ snapshot: DashboardSnapshot, at now: Date = Date()) {
        let previous = last.withLock { p in defer { p = (now, snapshot) }; return p }
        var bits = 0.0, cpu = 0.0
        if let previous {
            let dt = now.timeIntervalSince(previous.at)
            if dt > 0 {
                bits = Double(max(0, snapshot.turnRelayedBytes - previous.snapshot.turnRelayedBytes)) * 8 / dt
                cpu = max(0, snapshot.cpuSeconds - previous.snapshot.cpuSeconds) / dt * 100
            }
        }
        let scored = snapshot.calls.compactMap(\.mos)
        let sample = Sample(at: now, calls: snapshot.calls.count, meanMOS: scored.isEmpty ? nil : scored.reduce(0, +) / Double(scored.count),
                            turnAllocations: snapshot.turnAllocations, turnBitsPerSecond: bits, cpuPercent: cpu)
        samples.withLock { s in
            s.append(sample)
            s.removeAll { now.timeIntervalSince($0.at) > span }
        }
    }

    public var all: [Sample] { samples.withLock { $0 } }

    /// An inline SVG of calls (solid, left scale) and mean MOS (dashed, 1–5 on the right) over
    /// the span, drawn server-side (no script).
    func chartSVG(now: Date = Date()) -> String {
        let points = all
        let width = 720.0, height = 180.0, left = 34.0, right = 34.0, top = 10.0, bottom = 22.0
        let plotW = width - left - right, plotH = height - top - bottom
        let maxCalls = max(4, points.map(\.calls).max() ?? 0)
        func x(_ d: Date) -> Double { left + plotW * (1 - min(span, max(0, now.timeIntervalSince(d))) / span) }
        func yCalls(_ n: Int) -> Double { top + plotH * (1 - Double(n) / Double(maxCalls)) }
        func yMOS(_ m: Double) -> Double { top + plotH * (1 - (min(5, max(1, m)) - 1) / 4) }
        let calls = points.map { String(format: "%.1f,%.1f", x($0.at), yCalls($0.calls)) }.joined(separator: " ")
        let mos = points.compactMap { p in p.meanMOS.map { String(format: "%.1f,%.1f", x(p.at), yMOS($0)) } }.joined(separator: " ")
        var svg = "<svg class=\"chart\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"Calls and mean MOS over the last hour\">"
        svg += "<line class=\"axis\" x1=\"\(left)\" y1=\"\(top + plotH)\" x2=\"\(left + plotW)\" y2=\"\(top + plotH)\"/>"
        svg += "<line class=\"axis\" x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotH)\"/>"
        svg += "<text x=\"2\" y=\"\(top + 10)\">\(maxCalls)</text><text x=\"2\" y=\"\(top + plotH)\">0</text>"
        svg += "<text x=\"\(left + plotW + 4)\" y=\"\(top + 10)\">5.0</text><text x=\"\(left + plotW + 4)\" y=\"\(top + plotH)\">1.0</text>"
        svg += "<text x=\"\(left)\" y=\"\(height - 6)\">−60 min</text><text x=\"\(left + plotW - 24)\" y=\"\(height - 6)\">now</text>"
        if !calls.isEmpty { svg += "<polyline class=\"calls\" points=\"\(calls)\"/>" }
        if !mos.isEmpty { svg += "<polyline class=\"mos\" points=\"\(mos)\"/>" }
        return svg + "</svg>"
    }
}

/// Takes a dashboard sample every ``DashboardHistory/interval`` while `tandem serve` runs.
public struct DashboardSampler: Service {
    let backend: AdminBackend
    let history: DashboardHistory

    public init(backend: AdminBackend, history: DashboardHistory) {
        self.backend = backend
        self.history = history
    }

    public func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            history.add(await backend.snapshot())
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(history.interval)) }
        }
    }
}

/// The process's own figures for the dashboard (Linux `/proc/self`).
public enum ProcessFigures {
    /// CPU seconds (user + system) and resident bytes.
    public static func read() -> (cpuSeconds: Double, residentBytes: Int) {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        let cpu = Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6 + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        var rss = 0
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) {
            let fields = statm.split(separator: " ")
            if fields.count > 1, let pages = Int(fields[1]) { rss = pages * Int(sysconf(Int32(_SC_PAGESIZE))) }
        }
        return (cpu, rss)
    }
}
