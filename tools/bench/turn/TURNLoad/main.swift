// turn-load: the allocation load generator of tools/bench/turn. It faces Tandem and coturn
// alike: every allocation is a fresh 5-tuple (a new UDP socket on the next source port of a
// private range, since a server keeps a released 5-tuple for a while), and goes
// Allocate → 401 → authenticated Allocate → Refresh(0), with REST-API credentials.
import ArgumentParser
import Datapath
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
        subcommands: [Churn.self, Hold.self, Relay.self])
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
    var socket: UDPSocket
    var fd: Int32 { socket.fd }
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
    let server: DatagramAddress
    let username: String
    let password: String
    var buffer = [UInt8](repeating: 0, count: 2048)
    var failures = 0

    init(common: Common) {
        self.common = common
        nextPort = common.firstPort
        guard case .v4(let ip)? = IPAddress(common.server) else { fatalError("--server must be an IPv4 address") }
        server = DatagramAddress(ipv4: ip, port: UInt16(common.port))
        let c = RESTCredential.issue(secret: common.secret, user: "load", ttl: 86_400)
        username = c.username
        password = c.password
    }

    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// A non-blocking UDP socket on the next free source port.
    func openSocket() -> UDPSocket {
        for _ in 0..<1000 {
            let port = nextPort
            nextPort = nextPort >= common.lastPort ? common.firstPort : nextPort + 1
            if let socket = try? UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0001, port: UInt16(port))) { return socket }
        }
        fatalError("no free source port")
    }

    func send(_ socket: UDPSocket, _ bytes: [UInt8]) {
        _ = socket.send(bytes, to: server)
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
        var a = Attempt(socket: openSocket(), step: .challenge, transaction: .random(), sentAt: Self.now(), startedAt: Self.now())
        send(a.socket, message(.allocate, &a))
        return a
    }

    /// Advances an attempt on a response; returns true when the allocation is done (created or released).
    enum Progress { case waiting, allocated, released, failed }

    func receive(_ a: inout Attempt) -> Progress {
        let n = buffer.withUnsafeMutableBytes { recv(a.fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return .waiting }
        return receive(&a, bytes: Array(buffer[0..<n]))
    }

    func receive(_ a: inout Attempt, bytes: [UInt8]) -> Progress {
        guard let r = try? STUNMessage.decode(bytes), r.transactionID == a.transaction else { return .waiting }
        switch a.step {
        case .challenge:
            guard let nonce = try? r.nonce, let realm = try? r.realm else { return .failed }
            a.nonce = nonce
            a.realm = realm
            a.step = .allocate
            a.sentAt = Self.now()
            send(a.socket, message(.allocate, &a))
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
        send(a.socket, message(.refresh, &a, lifetime: 0))
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
                    attempts[i].socket.close()
                    attempts[i] = d.start()
                    fds[i] = pollfd(fd: attempts[i].fd, events: Int16(POLLIN), revents: 0)
                }
                fds[i].revents = 0
            }
        }
        let elapsed = Driver.now() - begin
        for a in attempts { a.socket.close() }
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
                    case .failed, .released: a.socket.close(); continue
                    case .waiting: break
                    }
                } else if Driver.now() - a.sentAt > 1.0 {
                    a.socket.close()
                    continue
                }
                keep.append(a)
            }
            inflight = keep
        }
        for a in inflight { a.socket.close() }
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
                if fds[i].revents & Int16(POLLIN) != 0, d.receive(&a) == .released { a.socket.close(); continue }
                keep.append(a)
            }
            pending = keep
        }
        for a in pending { a.socket.close() }
        print("released \(held.count - pending.count)")
    }
}

/// Waits up to `timeout` seconds for a datagram on `fd`.
func receiveBlocking(_ fd: Int32, into buffer: inout [UInt8], timeout: Int32) -> Int {
    var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    guard poll(&p, 1, timeout) > 0 else { return 0 }
    return buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
}

struct Relay: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Relay ChannelData through N allocations to an echo peer at a fixed rate; report relayed packets and loss.")
    @OptionGroup var common: Common
    @Option(help: "Allocations (clients).") var clients = 100
    @Option(help: "ChannelData messages per second sent by all clients together.") var rate = 20_000
    @Option(help: "Seconds of traffic.") var duration = 10.0
    @Option(help: "Payload bytes.") var size = 172

    func run() throws {
        let d = Driver(common: common)
        // The echo peer: a socket on this process, served by its own thread.
        let peerSocket = try UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0001, port: 0), options: .init(receiveBufferSize: 8 << 20))
        let peer = TransportAddress(ip: .v4(0x7F00_0001), port: peerSocket.localAddress.port)
        let stop = ManagedStop()
        let echo = Thread {
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 8)
            defer { buffer.deallocate() }
            while !stop.isSet {
                guard let got = peerSocket.receive(into: buffer) else {
                    var p = pollfd(fd: peerSocket.fd, events: Int16(POLLIN), revents: 0)
                    _ = poll(&p, 1, 200)
                    continue
                }
                _ = peerSocket.send(UnsafeRawBufferPointer(rebasing: buffer[0..<got.length]), to: got.source)
            }
        }
        echo.start()

        // Allocate and bind channel 0x4000 to the peer on every client.
        var allocations: [Attempt] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        for _ in 0..<clients {
            var a = d.start()
            var ok = false
            exchange: for _ in 0..<4 {
                let n = receiveBlocking(a.fd, into: &buffer, timeout: 1000)
                guard n > 0 else { break }
                switch d.receive(&a, bytes: Array(buffer[0..<n])) {
                case .allocated: ok = true; break exchange
                case .failed, .released: break exchange
                case .waiting: continue
                }
            }
            guard ok else { a.socket.close(); continue }
            var m = STUNMessage(type: STUNMessageType(method: .channelBind, messageClass: .request), transactionID: .random())
            m.attributes = [.channelNumber(0x4000), .xorAddress(.xorPeerAddress, peer, transactionID: m.transactionID),
                            .text(.username, d.username), .text(.realm, a.realm), .text(.nonce, a.nonce)]
            d.send(a.socket, m.encode(integrity: .sha1(key: STUNMessage.longTermKey(username: d.username, realm: a.realm, password: d.password)), fingerprint: true))
            var bound = false
            for _ in 0..<4 {
                let n = receiveBlocking(a.fd, into: &buffer, timeout: 1000)
                guard n > 0, let r = try? STUNMessage.decode(buffer[0..<n]) else { break }
                if r.transactionID == m.transactionID { bound = r.type.messageClass == .successResponse; break }
            }
            if bound { allocations.append(a) } else { a.socket.close() }
        }
        let sockets = allocations.map(\.socket)
        let fds = sockets.map(\.fd)
        guard !fds.isEmpty else { throw ValidationError("no allocation could be made") }
        var rcv: Int32 = 1 << 20
        for fd in fds { setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, socklen_t(MemoryLayout<Int32>.size)) }

        // Send at the rate, round-robin; drain echoes between bursts. Each payload starts with
        // its send time, so every echo gives a round-trip time (client → server → peer → back).
        var frame = ChannelData.encode(channelNumber: 0x4000, data: [UInt8](repeating: 0x5A, count: max(size, 8)), padded: false)
        var pfds = fds.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
        var sent = 0, received = 0, next = 0
        var rtts: [UInt32] = []
        rtts.reserveCapacity(min(Int(Double(rate) * duration) + 1, 4_000_000))
        let begin = Driver.now()
        func drain() {
            _ = poll(&pfds, nfds_t(pfds.count), 0)
            for i in 0..<pfds.count where pfds[i].revents & Int16(POLLIN) != 0 {
                pfds[i].revents = 0
                while true {
                    let n = buffer.withUnsafeMutableBytes { recv(pfds[i].fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                    if n <= 0 { break }
                    received += 1
                    if n >= 12, rtts.count < rtts.capacity {
                        let stamp = buffer.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: 4, as: UInt64.self)) }
                        let now = Driver.nanoseconds()
                        rtts.append(UInt32(clamping: (now &- stamp) / 1000))
                    }
                }
            }
        }
        while true {
            let elapsed = Driver.now() - begin
            if elapsed >= duration { break }
            let due = Int(elapsed * Double(rate))
            while sent < due {
                let stamp = Driver.nanoseconds().bigEndian
                frame.withUnsafeMutableBytes { $0.storeBytes(of: stamp, toByteOffset: 4, as: UInt64.self) }
                d.send(sockets[next], frame)
                next = (next + 1) % fds.count
                sent += 1
            }
            drain()
        }
        // Late echoes.
        let tail = Driver.now()
        while Driver.now() - tail < 0.5 { drain(); usleep(1000) }
        stop.set()
        // Release every allocation (Refresh 0), so the server holds nothing afterwards.
        for i in allocations.indices {
            d.release(&allocations[i])
            _ = receiveBlocking(allocations[i].fd, into: &buffer, timeout: 200)
            allocations[i].socket.close()
        }
        let seconds = Driver.now() - begin
        rtts.sort()
        func percentile(_ p: Double) -> Double { rtts.isEmpty ? 0 : Double(rtts[min(rtts.count - 1, Int(Double(rtts.count) * p))]) / 1000 }
        print("{\"clients\": \(fds.count), \"sent\": \(sent), \"received\": \(received), \"relayed\": \(sent + received), \"seconds\": \(duration), \"wall_seconds\": \(seconds), \"loss\": \(sent > 0 ? Double(sent - received) / Double(sent) : 1), \"rtt_p50_ms\": \(percentile(0.5)), \"rtt_p99_ms\": \(percentile(0.99))}")
    }
}

/// A flag set once, read from another thread.
final class ManagedStop: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
    func set() { lock.lock(); value = true; lock.unlock() }
}
