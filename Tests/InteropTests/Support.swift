import Foundation
import XCTest

/// Runs external programs and the `tandem` binary for interop tests.
enum Interop {
    /// Whether missing peers fail the test (`make test` sets TANDEM_INTEROP=required) or skip it.
    static var required: Bool { ProcessInfo.processInfo.environment["TANDEM_INTEROP"] == "required" }

    static func tool(_ name: String) throws -> String {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        if required { XCTFail("\(name) is not installed; `make test` installs it"); throw XCTSkip("missing \(name)") }
        throw XCTSkip("\(name) is not installed (run `make test` to install interop peers)")
    }

    /// The `tandem` executable next to the test bundle (or TANDEM_BINARY).
    static func tandemBinary() throws -> String {
        if let p = ProcessInfo.processInfo.environment["TANDEM_BINARY"] { return p }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [dir, dir.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("tandem").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw XCTSkip("tandem binary not built next to \(dir.path); run `swift build` first")
    }

    /// A fresh temporary directory.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A port free for both UDP and TCP on 127.0.0.1 (and the next one, for TLS).
    static func freePortPair() -> Int {
        for _ in 0..<100 {
            let p = Int.random(in: 20_000...39_000)
            if isFree(p, SOCK_DGRAM) && isFree(p, SOCK_STREAM) && isFree(p + 1, SOCK_STREAM) && isFree(p + 2, SOCK_STREAM) { return p }
        }
        return 0
    }

    static func isFree(_ port: Int, _ type: __socket_type) -> Bool {
        let fd = socket(AF_INET, Int32(type.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }

    struct Output {
        var status: Int32
        var text: String
        var timedOut: Bool
    }

    /// Runs a program to completion (killed after `timeout` seconds), capturing stdout+stderr.
    static func run(_ path: String, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60, input: String? = nil) throws -> Output {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let outFile = try temporaryDirectory().appendingPathComponent("out.txt")
        FileManager.default.createFile(atPath: outFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: outFile)
        p.standardOutput = handle
        p.standardError = handle
        if input != nil { p.standardInput = FileHandle.nullDevice }
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        var timedOut = false
        while p.isRunning {
            if Date() > deadline {
                timedOut = true
                p.terminate()
                Thread.sleep(forTimeInterval: 0.5)
                if p.isRunning { kill(p.processIdentifier, SIGKILL) }
                break
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        p.waitUntilExit()
        try handle.close()
        let text = (try? String(contentsOf: outFile, encoding: .utf8)) ?? ""
        return Output(status: p.terminationStatus, text: text, timedOut: timedOut)
    }
}

/// A `tandem serve` process on free loopback ports with a fresh data directory.
final class TandemProcess {
    let process = Process()
    let directory: URL
    let turnPort: Int
    let httpPort: Int
    let logFile: URL
    let secret: String

    /// Starts `tandem serve` with environment overrides and waits until TURN answers.
    init(allowLoopbackPeers: Bool = true, extraEnvironment: [String: String] = [:]) throws {
        directory = try Interop.temporaryDirectory()
        turnPort = Interop.freePortPair()
        httpPort = turnPort + 2
        secret = "interop-\(UUID().uuidString.prefix(8))"
        logFile = directory.appendingPathComponent("stdout.log")
        var env = ProcessInfo.processInfo.environment
        env["TANDEM_STORAGE_DATA_DIRECTORY"] = directory.appendingPathComponent("data").path
        env["TANDEM_LOG_DIRECTORY"] = directory.appendingPathComponent("log").path
        env["TANDEM_HTTP_LISTEN_ADDRESS"] = "127.0.0.1"
        env["TANDEM_HTTP_PORT"] = "\(httpPort)"
        env["TANDEM_TURN_LISTEN_ADDRESSES"] = "127.0.0.1"
        env["TANDEM_TURN_LISTEN_PORT"] = "\(turnPort)"
        env["TANDEM_TURN_TLS_PORT"] = "\(turnPort + 1)"
        env["TANDEM_TURN_RELAY_ADDRESSES"] = "127.0.0.1,::1"
        env["TANDEM_TURN_SHARED_SECRET"] = secret
        env["TANDEM_TURN_ALLOWED_PEERS"] = allowLoopbackPeers ? "127.0.0.0/8,::1/128" : ""
        env["TANDEM_TURN_THREADS"] = "1"
        for (k, v) in extraEnvironment { env[k] = v }
        process.executableURL = URL(fileURLWithPath: try Interop.tandemBinary())
        process.arguments = ["serve"]
        process.environment = env
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.isRunning { throw InteropError.exited(log) }
            if log.contains("TURN listening"), log.contains("tls") || extraEnvironment["TANDEM_TURN_TRANSPORTS"] != nil { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw InteropError.notReady(log)
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }

    /// SIGTERM, and the exit status (0 after a graceful shutdown).
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            let deadline = Date().addingTimeInterval(15)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }
}

enum InteropError: Error {
    case exited(String)
    case notReady(String)
}

/// `turnutils_peer`, the UDP echo peer from coturn.
final class EchoPeer {
    let process = Process()
    let port: Int

    init(address: String = "127.0.0.1") throws {
        port = Interop.freePortPair()
        process.executableURL = URL(fileURLWithPath: try Interop.tool("turnutils_peer"))
        process.arguments = ["-L", address, "-p", "\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 0.2)
    }

    func stop() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    deinit { stop() }
}

/// The summary `turnutils_uclient` prints at the end of a run.
struct UClientReport {
    var sent = 0
    var received = 0
    var lost = -1

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if let r = line.range(of: "tot_send_msgs="), !line.contains("msz=") {
                sent = Int(line[r.upperBound...].prefix { $0.isNumber }) ?? 0
                if let r2 = line.range(of: "tot_recv_msgs=") { received = Int(line[r2.upperBound...].prefix { $0.isNumber }) ?? 0 }
            }
            if let r = line.range(of: "Total lost packets ") { lost = Int(line[r.upperBound...].prefix { $0.isNumber }) ?? -1 }
        }
    }
}
