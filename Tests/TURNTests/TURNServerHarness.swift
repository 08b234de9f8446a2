import Datapath
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

/// A UDP STUN client on a loopback socket, for driving the server in tests.
final class UDPTestClient {
    let socket: UDPSocket
    let server: DatagramAddress
    /// How long ``receive()`` waits.
    var timeoutMilliseconds: Int32 = 2000

    init(serverPort: Int) throws {
        socket = try UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0001, port: 0))
        server = DatagramAddress(ipv4: 0x7F00_0001, port: UInt16(serverPort))
    }

    func send(_ bytes: [UInt8]) { _ = socket.send(bytes, to: server) }

    /// The next datagram, or nil after the timeout.
    func receive() -> [UInt8]? { socket.receive(waitingMilliseconds: timeoutMilliseconds)?.bytes }

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
    let socket: UDPSocket

    init() {
        socket = try! UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0001, port: 0))
    }

    var port: UInt16 { socket.localAddress.port }
    var address: TransportAddress { TransportAddress(ip: .v4(0x7F00_0001), port: port) }

    /// The next datagram and its source port, or nil after a second.
    func receive() -> (bytes: [UInt8], from: UInt16)? {
        socket.receive(waitingMilliseconds: 1000).map { ($0.bytes, $0.source.port) }
    }

    func send(_ bytes: [UInt8], toPort port: UInt16) {
        _ = socket.send(bytes, to: DatagramAddress(ipv4: 0x7F00_0001, port: port))
    }
}
