// turn-load: the allocation load generator of tools/bench/turn. It faces Tandem and coturn
// alike: every allocation is a fresh 5-tuple (a new UDP socket on the next source port of a
// private range, since a server keeps a released 5-tuple for a while), and goes
// Allocate → 401 → authenticated Allocate → Refresh(0), with REST-API credentials.
import ArgumentParser
import Crypto
import Foundation
import STUN
import TURN

#if canImport(Glibc)
import Glibc
#endif

@main
struct TURNLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "turn-load",
        abstract: "Allocation load for TURN servers (REST-API credentials).",
        subcommands: [Churn.self, Hold.self])
}

struct Common: ParsableArguments {
    @Option(help: "TURN server IPv4 address.") var server = "127.0.0.1"
    @Option(help: "TURN server UDP port.") var port = 3478
    @Option(help: "REST-API shared secret.") var secret: String
    @Option(help: "First client source port.") var firstPort = 20_000
    @Option(help: "Last client source port.") var lastPort = 45_000
}

/// One in-flight allocation attempt on its own socket.
struct Attempt {
    enum Step { case challenge, allocate, release }
    var fd: Int32
    var step: Step
    var transaction: TransactionID
    var sentAt: Double
    var startedAt: Double
    var nonce = ""
    var realm = ""
}

final class Driver {
    let common: Common
    var nextPort: Int
    let server: sockaddr_in
    let username: String
    let password: String
    var buffer = [UInt8](repeating: 0, count: 2048)
    var failures = 0

    init(common: Common) {
        self.common = common
        nextPort = common.firstPort
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = in_port_t(UInt16(common.port).bigEndian)
        a.sin_addr.s_addr = inet_addr(common.server)
        server = a
        let c = RESTCredential.issue(secret: common.secret, user: "load", ttl: 86_400)
        username = c.username
        password = c.password
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// A non-blocking UDP socket on the next free source port.
    func openSocket() -> Int32 {
        for _ in 0..<1000 {
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_addr.s_addr = inet_addr("127.0.0.1")
            a.sin_port = in_port_t(UInt16(nextPort).bigEndian)
            nextPort = nextPort >= common.lastPort ? common.firstPort : nextPort + 1
            let ok = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if ok == 0 { return fd }
            close(fd)
        }
        fatalError("no free source port")
    }

    func send(_ fd: Int32, _ bytes: [UInt8]) {
        var to = server
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
    }

    func message(_ method: STUNMethod, _ a: inout Attempt, lifetime: UInt32? = nil) -> [UInt8] {
        a.transaction = .random()
        var m = STUNMessage(type: STUNMessageType(method: method, messageClass: .request), transactionID: a.transaction)
        if method == .allocate { m.attributes.append(.requestedTransport(17)) }
        if let lifetime { m.attributes.append(.uint32(.lifetime, lifetime)) }
        if a.nonce.isEmpty { return m.encode() }
        m.attributes += [.text(.username, username), .text(.realm, a.realm), .text(.nonce, a.nonce)]
        return m.encode(integrity: .sha1(key: STUNMessage.longTermKey(username: username, realm: a.realm, password: password)), fingerprint: true)
    }

    func start() -> Attempt {
        var a = Attempt(fd: openSocket(), step: .challenge, transaction: .random(), sentAt: Self.now(), startedAt: Self.now())
        send(a.fd, message(.allocate, &a))
        return a
    }

    /// Advances an attempt on a response; returns true when the allocation is done (created or released).
    enum Progress { case waiting, allocated, released, failed }

    func receive(_ a: inout Attempt) -> Progress {
        let n = buffer.withUnsafeMutableBytes { recv(a.fd, $0.baseAddress, $0.count, 0) }
        guard n > 0, let r = try? STUNMessage.decode(buffer[0..<n]), r.transactionID == a.transaction else { return .waiting }
        switch a.step {
        case .challenge:
            guard let nonce = try? r.nonce, let realm = try? r.realm else { return .failed }
            a.nonce = nonce
            a.realm = realm
            a.step = .allocate
            a.sentAt = Self.now()
            send(a.fd, message(.allocate, &a))
            return .waiting
        case .allocate:
            guard r.type.messageClass == .successResponse else { return .failed }
            return .allocated
        case .release:
            return .released
        }
    }

    func release(_ a: inout Attempt) {
        a.step = .release
        a.sentAt = Self.now()
        send(a.fd, message(.refresh, &a, lifetime: 0))
    }
}

struct Churn: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Allocate and release as fast as the server answers, for a fixed time.")
    @OptionGroup var common: Common
    @Option(help: "Allocations in flight.") var concurrency = 64
    @Option(help: "Seconds to run.") var duration = 10.0

    func run() throws {
        let d = Driver(common: common)
        var attempts = (0..<concurrency).map { _ in d.start() }
        var fds = attempts.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        var completed = 0, failed = 0
        var latencies: [Double] = []
        let begin = Driver.now()
        while Driver.now() - begin < duration {
            let ready = poll(&fds, nfds_t(fds.count), 100)
            let now = Driver.now()
            for i in 0..<fds.count {
                var restart = false
                if ready > 0, fds[i].revents & Int16(POLLIN) != 0 {
                    switch d.receive(&attempts[i]) {
                    case .waiting: break
                    case .allocated: d.release(&attempts[i])
                    case .released:
                        completed += 1
                        latencies.append(now - attempts[i].startedAt)
                        restart = true
                    case .failed:
                        failed += 1
                        restart = true
                    }
                } else if now - attempts[i].sentAt > 1.0 {
                    failed += 1  // lost: start over on a new 5-tuple
                    restart = true
                }
                if restart {
                    close(attempts[i].fd)
                    attempts[i] = d.start()
                    fds[i] = pollfd(fd: attempts[i].fd, events: Int16(POLLIN), revents: 0)
                }
                fds[i].revents = 0
            }
        }
        let elapsed = Driver.now() - begin
        for a in attempts { close(a.fd) }
        latencies.sort()
        let p99 = latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]
        let p50 = latencies.isEmpty ? 0 : latencies[latencies.count / 2]
        print("{\"completed\": \(completed), \"failed\": \(failed), \"seconds\": \(elapsed), \"per_second\": \(Double(completed) / elapsed), \"p50_ms\": \(p50 * 1000), \"p99_ms\": \(p99 * 1000)}")
    }
}

struct Hold: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create N allocations, hold them until stdin closes (or a timeout), then release them.")
    @OptionGroup var common: Common
    @Option(help: "Allocations to hold.") var count = 1000
    @Option(help: "Longest time to hold, in seconds.") var timeout = 120.0

    func run() throws {
        let d = Driver(common: common)
        var held: [Attempt] = []
        var inflight: [Attempt] = []
        let begin = Driver.now()
        while held.count < count && Driver.now() - begin < timeout {
            while inflight.count < 64 && held.count + inflight.count < count { inflight.append(d.start()) }
            var fds = inflight.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 100)
            var keep: [Attempt] = []
            for i in 0..<inflight.count {
                var a = inflight[i]
                if fds[i].revents & Int16(POLLIN) != 0 {
                    switch d.receive(&a) {
                    case .allocated: held.append(a); continue
                    case .failed, .released: close(a.fd); continue
                    case .waiting: break
                    }
                } else if Driver.now() - a.sentAt > 1.0 {
                    close(a.fd)
                    continue
                }
                keep.append(a)
            }
            inflight = keep
        }
        for a in inflight { close(a.fd) }
        FileHandle.standardOutput.write(Data("held \(held.count)\n".utf8))
        // Wait for the controller: a line on stdin (or EOF) means release.
        _ = readLine()
        for i in held.indices { d.release(&held[i]) }
        var pending = held
        let releaseBegin = Driver.now()
        while !pending.isEmpty && Driver.now() - releaseBegin < 10 {
            var fds = pending.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            _ = poll(&fds, nfds_t(fds.count), 100)
            var keep: [Attempt] = []
            for i in 0..<pending.count {
                var a = pending[i]
                if fds[i].revents & Int16(POLLIN) != 0, d.receive(&a) == .released { close(a.fd); continue }
                keep.append(a)
            }
            pending = keep
        }
        for a in pending { close(a.fd) }
        print("released \(held.count - pending.count)")
    }
}
