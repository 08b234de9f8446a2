import Foundation
import ServiceLifecycle
import Logging
import Store

/// The version of this build, as diagnostics and the pages show it.
public enum TandemBuild {
    public static let version = "0.1.0"
}

/// "Download diagnostics": one `.tar.gz` named with its UTC time, holding the log files,
/// the configuration with every secret redacted (`turn.shared-secret` shows only whether it
/// is set), the runtime settings of the database without secrets, the audit log, a metrics
/// snapshot, version and host facts, and optionally a packet capture of the SIP and media
/// ports (dumpcap, time-limited). The TURN secrets and the seeded OAuth secret are scrubbed
/// from every text file, the logs included.
enum DiagnosticsArchive {
    /// The longest capture the page offers (s).
    static let maximumCaptureSeconds = 60

    /// dumpcap when installed.
    static var captureTool: String? {
        ["/usr/bin/dumpcap", "/usr/sbin/dumpcap", "/usr/local/bin/dumpcap"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// A capture filter (pcap syntax) for the SIP port(s) and the media port ranges.
    static func captureFilter(_ configuration: TandemConfiguration) -> String {
        let sip = configuration.sip, media = configuration.media
        var parts = ["port \(sip.listenPort)", "port \(sip.tlsPort)", "udp portrange \(sip.rtpPortRange.lowerBound)-\(sip.rtpPortRange.upperBound)"]
        if media.sharedPort > 0 {
            parts.append("udp portrange \(media.sharedPort)-\(media.sharedPort + 64)")
        } else {
            parts.append("udp portrange \(media.portRange.lowerBound)-\(media.portRange.upperBound)")
        }
        return parts.joined(separator: " or ")
    }

    static func make(_ context: ServeContext, captureSeconds: Int, metricsText: String, now: Date = Date()) async throws -> (name: String, data: Data) {
        let stamp = ISO8601DateFormatter().string(from: now).replacingOccurrences(of: ":", with: "").replacingOccurrences(of: "-", with: "")
        let name = "tandem-diagnostics-\(stamp)"
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-diag-\(UUID().uuidString)")
        let root = work.appendingPathComponent(name)
        defer { try? FileManager.default.removeItem(at: work) }
        try FileManager.default.createDirectory(at: root.appendingPathComponent("logs"), withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let secrets = try await secretsToScrub(context.store)
        func write(_ text: String, _ path: String) throws {
            try Data(scrub(text, secrets).utf8).write(to: root.appendingPathComponent(path))
        }
        // Logs, scrubbed line by line (a first start logs the generated OAuth secret once).
        if let file = context.logging?.file {
            for path in file.existingPaths() {
                let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
                try write(text, "logs/" + URL(fileURLWithPath: path).lastPathComponent)
            }
        }
        try write("# The effective configuration of this server (file, TANDEM_* variables, defaults); secrets redacted.\n"
                  + context.configuration.renderYAML(), "configuration.yaml")
        try write(try await runtimeSettings(context.store), "runtime-settings.json")
        let audit = try await context.store.auditLog(limit: 100_000)
        let format = ISO8601DateFormatter()
        try write(audit.reversed().map { "\(format.string(from: $0.at))\t\($0.account ?? "-")\t\($0.source)\t\($0.action)\t\($0.detail)" }.joined(separator: "\n") + "\n", "audit.log")
        try write(metricsText, "metrics.txt")
        try write(versionText(context, now: now), "version.txt")
        if captureSeconds > 0 {
            try write(try await capture(context, seconds: min(captureSeconds, maximumCaptureSeconds), into: root.appendingPathComponent("capture.pcapng").path), "capture.txt")
        }
        let archive = work.appendingPathComponent(name + ".tar.gz")
        try run("/bin/tar", ["-czf", archive.path, "-C", work.path, name])
        return (name + ".tar.gz", try Data(contentsOf: archive))
    }

    /// The secrets that must not leave in an archive: the TURN shared secrets (current and
    /// previous); OAuth secrets are kept only as hashes, but the first start logs one.
    static func secretsToScrub(_ store: Store) async throws -> [String] {
        let turn = try await store.turnSettings()
        return [turn.sharedSecret, turn.previousSharedSecret].compactMap { $0 }.filter { $0.count >= 8 }
    }

    /// `text` without `secrets`, and without the value of any `client-secret=` / `password=` field.
    static func scrub(_ text: String, _ secrets: [String]) -> String {
        var out = text
        for secret in secrets { out = out.replacingOccurrences(of: secret, with: "<redacted>") }
        for field in ["client-secret=", "password=", "shared-secret="] where out.contains(field) {
            out = out.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
                guard let range = line.range(of: field) else { return String(line) }
                let rest = line[range.upperBound...]
                let end = rest.firstIndex(where: { $0 == " " || $0 == "\t" }) ?? rest.endIndex
                return String(line[..<range.upperBound]) + "<redacted>" + String(rest[end...])
            }.joined(separator: "\n")
        }
        return out
    }

    /// The database's runtime settings without secrets: the configuration as exported (services,
    /// TURN, and the SIP platform and payload set in /cms), the diagnostics set in /cms, and
    /// the OAuth clients' ids.
    static func runtimeSettings(_ store: Store) async throws -> String {
        let exported = try await store.export(extensions: false, configuration: true)
        var object: [String: Any] = [:]
        if let json = try JSONSerialization.jsonObject(with: exported.encoded()) as? [String: Any] { object["export"] = json }
        if let diagnostics = try await store.diagnosticsSettings() {
            object["diagnostics"] = ["defaultLevel": diagnostics.defaultLevel, "levels": diagnostics.levels, "maxFiles": diagnostics.maxFiles,
                                     "maxFileSize": diagnostics.maxFileSize]
        }
        object["oauthClients"] = try await store.oauthClients().map { ["clientID": $0.clientID, "tokenValidityMinutes": $0.tokenValidityMinutes] }
        object["extensions"] = try await store.extensions().count
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    static func versionText(_ context: ServeContext, now: Date) -> String {
        var system = utsname()
        uname(&system)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return """
            tandem \(TandemBuild.version)
            created \(ISO8601DateFormatter().string(from: now))
            host \(field(system.nodename)) \(field(system.sysname)) \(field(system.release)) \(field(system.machine))
            pid \(getpid())
            certificate not-valid-after \(ISO8601DateFormatter().string(from: context.tls.material.notValidAfter))

            """
    }

    /// Captures the SIP and media ports for `seconds` with dumpcap into `path`; what happened, as text.
    static func capture(_ context: ServeContext, seconds: Int, into path: String) async throws -> String {
        guard let tool = captureTool else { return "No capture: dumpcap is not installed (Debian: wireshark-common or tshark).\n" }
        let filter = captureFilter(context.configuration)
        let result = try await Task.detached {
            try run(tool, ["-q", "-i", "any", "-a", "duration:\(seconds)", "-f", filter, "-w", path], allowFailure: true)
        }.value
        return "dumpcap -i any -a duration:\(seconds) -f \"\(filter)\"\nexit \(result.status)\n\(result.output)"
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String], allowFailure: Bool = false) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard allowFailure || process.terminationStatus == 0 else {
            throw DiagnosticsError("\(executable) failed (\(process.terminationStatus)): \(output.prefix(500))")
        }
        return (process.terminationStatus, String(output.suffix(2000)))
    }
}

struct DiagnosticsError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Follows the diagnostics settings in the database: an import from the CLI or the API (or
/// another process) changes the log levels and retention within ``pollInterval``, as the
/// /cms page does at once; a removed row brings back the configuration file's `log.*`.
struct DiagnosticsFollower: Service {
    let store: Store
    let logging: LoggingControl
    let configured: DiagnosticsSettings
    let logger: Logger
    var pollInterval: Duration = .seconds(3)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var seen = try? await store.diagnosticsSettings()
            while !Task.isCancelled {
                try? await Task.sleep(for: pollInterval)
                let now: DiagnosticsSettings?
                do { now = try await store.diagnosticsSettings() } catch { continue }
                guard now != seen else { continue }
                seen = now
                TandemServer.apply(now ?? configured, to: logging)
                logger.info("Log levels and retention changed in the database", metadata: ["level": "\((now ?? configured).defaultLevel)"])
            }
        }
    }
}
