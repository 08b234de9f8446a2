import Foundation
import Logging
import NIOCore
import NIOPosix
import STUN
@testable import TURN

/// Starts an in-process TURN server on free loopback ports for tests.
struct TURNServerHarness {
    let server: TURNServer
    let port: Int
    let secret: String

    static func start(
        secret: String = "test-secret-\(UInt32.random(in: 0...UInt32.max))",
        allowLoopback: Bool = true,
        configure: (inout TURNServerConfiguration) -> Void = { _ in }
    ) async throws -> TURNServerHarness {
        var config = TURNServerConfiguration()
        config.listenAddresses = ["127.0.0.1"]
        config.transports = [.udp, .tcp]
        config.relayAddresses = [IPAddress("127.0.0.1")!, IPAddress("::1")!]
        config.allowedPeers = allowLoopback ? [CIDR("127.0.0.0/8")!, CIDR("::1/128")!] : []
        config.threads = 1
        configure(&config)
        var lastError: (any Error)?
        for _ in 0..<20 {
            config.port = Int.random(in: 20_000...39_000)
            config.tlsPort = config.port + 1
            var logger = Logger(label: "turn-test")
            logger.logLevel = .warning
            let server = TURNServer(configuration: config, secrets: SharedSecrets(current: secret), logger: logger)
            do {
                try await server.start()
                return TURNServerHarness(server: server, port: config.port, secret: secret)
            } catch {
                lastError = error
                await server.stop()
            }
        }
        throw lastError!
    }

    func stop() async { await server.stop() }
}

/// A minimal blocking UDP STUN client over a BSD socket, for driving the server in tests.
final class UDPTestClient {
    let fd: Int32
    let server: sockaddr_in

    init(serverPort: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(serverPort).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        server = addr
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        var to = server
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &to) { p in
                p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }

    /// The next datagram, or nil after the timeout.
    func receive() -> [UInt8]? {
        var buf = [UInt8](repeating: 0, count: 65_536)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Array(buf[0..<n])
    }

    func request(_ m: STUNMessage, integrity: STUNMessage.Integrity = .none) throws -> STUNMessage {
        send(m.encode(integrity: integrity, fingerprint: true))
        while let bytes = receive() {
            if let r = try? STUNMessage.decode(bytes), r.transactionID == m.transactionID { return r }
        }
        throw STUNError.truncated
    }
}

/// A loopback UDP peer socket bound to an ephemeral port.
final class UDPPeer {
    let fd: Int32
    let port: UInt16

    init() {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        self.fd = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = UInt16(bigEndian: addr.sin_port)
        var tv = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    var address: TransportAddress { TransportAddress(ip: .v4(0x7F00_0001), port: port) }

    func receive() -> (bytes: [UInt8], from: UInt16)? {
        var buf = [UInt8](repeating: 0, count: 65_536)
        var from = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let n = buf.withUnsafeMutableBytes { b in
            withUnsafeMutablePointer(to: &from) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { recvfrom(fd, b.baseAddress, b.count, 0, $0, &len) } }
        }
        guard n > 0 else { return nil }
        return (Array(buf[0..<n]), UInt16(bigEndian: from.sin_port))
    }

    func send(_ bytes: [UInt8], toPort port: UInt16) {
        var to = sockaddr_in()
        to.sin_family = sa_family_t(AF_INET)
        to.sin_port = in_port_t(port.bigEndian)
        to.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = bytes.withUnsafeBytes { b in
            withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, b.baseAddress, b.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
    }
}
