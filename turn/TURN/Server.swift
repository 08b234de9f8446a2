import Datapath
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import STUN
import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// The TURN server (RFC 8656): client listeners for UDP and TCP on ``TURNServerConfiguration/port``
/// and TLS on ``TURNServerConfiguration/tlsPort``, one ``TURNLoopCore`` per datapath loop,
/// and relays bound on demand. UDP (clients and relays) runs on raw sockets in the datapath
/// loops; TCP and TLS connections run on SwiftNIO and hand their frames to a core.
/// Runs as a swift-service-lifecycle `Service`: `run()` returns after a graceful shutdown
/// has closed every listener and allocation.
public final class TURNServer: Service, Sendable {
    public let configuration: TURNServerConfiguration
    let shared: TURNShared
    /// SwiftNIO threads for the TCP/TLS client connections.
    let group: MultiThreadedEventLoopGroup
    private let state = Mutex<(started: Bool, listeners: [any Channel], cores: [LoopBound<TURNLoopCore>])>((false, [], []))
    /// Round-robin choice of a core for each new TCP/TLS connection.
    private let nextCore = RoundRobin()

    final class RoundRobin: Sendable {
        let value = Atomic<Int>(0)
        func next() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
    }

    /// The addresses the listeners are bound to, by transport, once started.
    public let boundAddresses = Mutex<[(ClientTransport, SocketAddress)]>([])

    public init(configuration: TURNServerConfiguration, secrets: SharedSecrets, logger: Logger) {
        self.configuration = configuration
        self.shared = TURNShared(config: configuration, secrets: secrets, logger: logger)
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, Self.threadCount(configuration)))
    }

    static func threadCount(_ configuration: TURNServerConfiguration) -> Int {
        configuration.threads > 0 ? configuration.threads : System.coreCount
    }

    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await stop()
    }

    /// Binds every listener; throws when a listener cannot be bound.
    public func start() async throws {
        let shared = self.shared
        var cores: [LoopBound<TURNLoopCore>] = []
        for i in 0..<Self.threadCount(configuration) {
            let loop = try DatapathLoop(name: "turn-\(i)", batchWindowMicroseconds: configuration.batchWindowMicroseconds)
            loop.start()
            let core = try await loop.submit { () -> LoopBound<TURNLoopCore> in
                let core = TURNLoopCore(loop: loop, shared: shared)
                core.startTicking()
                return LoopBound(core, loop: loop)
            }
            cores.append(core)
        }
        state.withLock { $0.cores = cores }
        var listeners: [any Channel] = []
        var bound: [(ClientTransport, SocketAddress)] = []
        do {
            for host in configuration.listenAddresses {
                guard let ip = IPAddress(host) else { throw SocketError("bind \(host): not an IP address", errno: EINVAL) }
                if configuration.transports.contains(.udp) {
                    // Every loop binds the same port (SO_REUSEPORT); the first one picks it when 0.
                    var address = DatagramAddress(TransportAddress(ip: ip, port: UInt16(configuration.port)))
                    for core in cores {
                        let want = address
                        address = try await core.loop.submit { try core.value.addUDPListener(want) }
                    }
                    bound.append((.udp, try TransportAddress(address).socketAddress()))
                }
                if configuration.transports.contains(.tcp) {
                    let channel = try await streamListener(host: host, port: configuration.port, transport: .tcp, tls: nil, cores: cores)
                    listeners.append(channel)
                    if let a = channel.localAddress { bound.append((.tcp, a)) }
                }
                if configuration.transports.contains(.tls), let tls = configuration.tls {
                    let context = try NIOSSLContext(configuration: tls)
                    let channel = try await streamListener(host: host, port: configuration.tlsPort, transport: .tls, tls: context, cores: cores)
                    listeners.append(channel)
                    if let a = channel.localAddress { bound.append((.tls, a)) }
                }
            }
        } catch {
            for l in listeners { try? await l.close() }
            await stopCores()
            throw error
        }
        state.withLock { $0.started = true; $0.listeners = listeners }
        boundAddresses.withLock { $0 = bound }
        for (t, a) in bound {
            shared.logger.info("TURN listening", metadata: ["transport": "\(t.rawValue)", "address": "\(a)"])
        }
        shared.logger.info("TURN relay addresses", metadata: ["relay": "\(configuration.relayAddresses)", "realm": "\(configuration.realm)"])
    }

    /// Closes the listeners and every allocation, then stops the loops.
    public func stop() async {
        let listeners = state.withLock { s -> [any Channel] in
            let r = s.listeners
            s.listeners = []
            return r
        }
        for l in listeners { try? await l.close() }
        // TCP/TLS connections close first, so their cores (still running) release their allocations.
        try? await group.shutdownGracefully()
        await stopCores()
        shared.logger.info("TURN stopped")
    }

    private func stopCores() async {
        let cores = state.withLock { s -> [LoopBound<TURNLoopCore>] in
            let r = s.cores
            s.cores = []
            return r
        }
        for c in cores {
            try? await c.loop.submit { c.value.shutdown() }
            await c.loop.stop()
        }
    }

    /// Whether the listeners are bound and not yet closed.
    public var isRunning: Bool { state.withLock { $0.started && !$0.cores.isEmpty } }

    /// Allocations, permissions and channels alive now (all loops).
    public var liveCounts: (allocations: Int, permissions: Int, channels: Int) {
        (shared.metrics.allocationCount.load(ordering: .relaxed), shared.metrics.permissionCount.load(ordering: .relaxed), shared.metrics.channelCount.load(ordering: .relaxed))
    }

    /// The shared secrets the server accepts (change them live: ``SharedSecrets/set(current:previous:previousValidUntil:)``).
    public var secrets: SharedSecrets { shared.authenticator.secrets }

    /// Where new allocations relay from now on (allocations made before keep their relayed
    /// addresses until they end): the first address of each family, and the external address
    /// advertised for a relay address behind a 1:1 NAT.
    public func updateRelayAddresses(_ addresses: [IPAddress], externalAddresses: [IPAddress: IPAddress]) {
        shared.relays.withLock { $0 = TURNShared.RelayPlan(addresses, external: externalAddresses) }
        shared.logger.notice("TURN relay addresses changed", metadata: ["relay": "\(addresses)", "external": "\(externalAddresses)"])
    }

    /// Payload bytes relayed since start, both directions (as of the loops' last housekeeping tick).
    public var relayedBytes: Int { shared.metrics.relayedByteCount.load(ordering: .relaxed) }

    // MARK: listeners

    private func streamListener(host: String, port: Int, transport: ClientTransport, tls: NIOSSLContext?, cores: [LoopBound<TURNLoopCore>]) async throws -> any Channel {
        let idleTimeout = configuration.streamIdleTimeout
        return try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [nextCore] channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let remote = channel.remoteAddress.flatMap(TransportAddress.init) else { throw ChannelError.ioOnClosedChannel }
                    let core = cores[nextCore.next() % cores.count]
                    let connection = StreamConnection(channel: channel, transport: transport, remote: DatagramAddress(remote))
                    let ops = channel.pipeline.syncOperations
                    if let tls { try ops.addHandler(NIOSSLServerHandler(context: tls)) }
                    try ops.addHandler(ByteToMessageHandler(StreamFrameDecoder()))
                    try ops.addHandler(ClientStreamHandler(core: core, connection: connection, idleTimeout: idleTimeout))
                }
            }
            .bind(host: host, port: port)
            .get()
    }
}

// MARK: relays

extension TURNLoopCore {
    enum PortChoice {
        case any, even
        case exact(UInt16)
    }

    /// Binds a relay socket on `ip` (RFC 8656 §7.2: a port from the relay range; EVEN-PORT
    /// asks for an even one). Tries other ports while one is taken.
    func bindRelay(ip: IPAddress, choice: PortChoice, dontFragment: Bool) throws(SocketError) -> UDPSocket {
        let range = config.relayPorts
        var attempt = 0
        while true {
            var port: Int
            switch choice {
            case .exact(let p): port = Int(p)
            case .any: port = Int.random(in: range)
            case .even:
                port = Int.random(in: range) & ~1
                if port < range.lowerBound { port += 2 }
            }
            do {
                return try UDPSocket(binding: DatagramAddress(TransportAddress(ip: ip, port: UInt16(port))), options: .init(dontFragment: dontFragment))
            } catch {
                attempt += 1
                if case .exact = choice { throw error }
                if !error.isAddressInUse || attempt >= 48 { throw error }
            }
        }
    }

    /// Binds an even port and reserves the next one under `token` (EVEN-PORT with R, RFC 8656 §7.2).
    func bindEvenPairReserving(ip: IPAddress, token: UInt64, dontFragment: Bool) throws(SocketError) -> UDPSocket {
        var attempt = 0
        while true {
            let socket = try bindRelay(ip: ip, choice: .even, dontFragment: dontFragment)
            let next = Int(socket.localAddress.port) + 1
            do throws(SocketError) {
                guard next <= config.relayPorts.upperBound else { throw SocketError("bind: relay range exhausted", errno: EADDRINUSE) }
                let placeholder = try bindRelay(ip: ip, choice: .exact(UInt16(next)), dontFragment: false)
                let reservation = Reservation(placeholder: placeholder, address: TransportAddress(ip: ip, port: UInt16(next)), expiry: monotonicMilliseconds() + 30_000)
                shared.reservations.withLock { $0[token] = reservation }
                return socket
            } catch {
                socket.close()
                attempt += 1
                if attempt >= 16 { throw error }
            }
        }
    }
}

// MARK: handlers

/// One TCP or TLS client connection (RFC 8656 §3.1) on its NIO loop: frames go to the
/// connection's core, and its allocation lives as long as the connection does.
final class ClientStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let core: LoopBound<TURNLoopCore>
    let connection: StreamConnection
    let idleTimeout: Int

    init(core: LoopBound<TURNLoopCore>, connection: StreamConnection, idleTimeout: Int) {
        self.core = core
        self.connection = connection
        self.idleTimeout = idleTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        scheduleIdleCheck(core: core, connection: connection, timeout: idleTimeout)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        let (core, connection) = (self.core, self.connection)
        core.loop.execute { core.value.receiveFromStream(frame, connection: connection) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let (core, connection) = (self.core, self.connection)
        core.loop.execute { core.value.connectionClosed(connection) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        core.loop.execute { [core] in core.value.logger.debug("TURN stream closed on error", metadata: ["error": "\(error)"]) }
        context.close(promise: nil)
    }
}

/// A connection that holds no allocation for `timeout` seconds is closed, so idle
/// connections cannot pile up (checked on the core's loop, which owns the allocations).
private func scheduleIdleCheck(core: LoopBound<TURNLoopCore>, connection: StreamConnection, timeout: Int) {
    guard timeout > 0 else { return }
    connection.channel.eventLoop.scheduleTask(in: .seconds(Int64(timeout))) {
        guard connection.channel.isActive else { return }
        core.loop.execute {
            if core.value.holdsAllocation(connection) {
                scheduleIdleCheck(core: core, connection: connection, timeout: timeout)
            } else {
                core.value.logger.debug("closing idle TURN stream", metadata: ["client": "\(connection.remote)"])
                connection.close()
            }
        }
    }
}

/// Frames STUN and ChannelData messages on a TCP/TLS stream (RFC 8656 §12.5): a STUN
/// message is 20 bytes plus its length; ChannelData is 4 bytes plus its length, padded to
/// four bytes. Clients that leave ChannelData unpadded are tolerated: padding is only
/// skipped when the following bytes show it is padding.
struct StreamFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    /// Padding still owed by the previous ChannelData frame.
    var owedPadding = 0

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if owedPadding > 0 {
            guard buffer.readableBytes >= 2, let b0 = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
                  let b1 = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) else { return .needMoreData }
            // Padding is zeros; an unpadded next message from a client starts 0x00 0x01–0x3F (STUN)
            // or 0x40–0x7F (ChannelData).
            let isPadding = b0 == 0 && (b1 == 0 || (owedPadding == 1 && b1 & 0xC0 == 0x40))
            if isPadding {
                guard buffer.readableBytes >= owedPadding else { return .needMoreData }
                buffer.moveReaderIndex(forwardBy: owedPadding)
            }
            owedPadding = 0
        }
        guard buffer.readableBytes >= 4,
              let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self),
              let length = buffer.getInteger(at: buffer.readerIndex + 2, as: UInt16.self) else { return .needMoreData }
        let total: Int
        switch first & 0xC0 {
        case 0x00: total = STUN.headerLength + Int(length)
        case 0x40: total = ChannelData.headerLength + Int(length)
        default: throw STUNError.notSTUN
        }
        guard buffer.readableBytes >= total else { return .needMoreData }
        let frame = buffer.readSlice(length: total)!
        if first & 0xC0 == 0x40 { owedPadding = (4 - Int(length) % 4) % 4 }
        context.fireChannelRead(wrapInboundOut(frame))
        return .continue
    }

    mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        return .needMoreData
    }
}
