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
/// and TLS on ``TURNServerConfiguration/tlsPort``, one ``TURNLoopCore`` per event loop, and
/// relays bound on demand. Runs as a swift-service-lifecycle `Service`: `run()` returns
/// after a graceful shutdown has closed every listener and allocation.
public final class TURNServer: Service, Sendable {
    public let configuration: TURNServerConfiguration
    let shared: TURNShared
    let group: MultiThreadedEventLoopGroup
    private let state = Mutex<(started: Bool, listeners: [any Channel], cores: [NIOLoopBound<TURNLoopCore>])>((false, [], []))

    /// The addresses the listeners are bound to, by transport, once started.
    public let boundAddresses = Mutex<[(ClientTransport, SocketAddress)]>([])

    public init(configuration: TURNServerConfiguration, secrets: SharedSecrets, logger: Logger) {
        self.configuration = configuration
        self.shared = TURNShared(config: configuration, secrets: secrets, logger: logger)
        let threads = configuration.threads > 0 ? configuration.threads : System.coreCount
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    }

    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await stop()
    }

    /// Binds every listener; throws when a listener cannot be bound.
    public func start() async throws {
        let shared = self.shared
        var cores: [NIOLoopBound<TURNLoopCore>] = []
        for loop in group.makeIterator() {
            let core = try await loop.submit { () -> NIOLoopBound<TURNLoopCore> in
                let core = TURNLoopCore(loop: loop, shared: shared)
                core.startTicking()
                return NIOLoopBound(core, eventLoop: loop)
            }.get()
            cores.append(core)
        }
        state.withLock { $0.cores = cores }
        let byLoop = Dictionary(uniqueKeysWithValues: cores.map { (ObjectIdentifier($0.eventLoop), $0) })
        var listeners: [any Channel] = []
        var bound: [(ClientTransport, SocketAddress)] = []
        do {
            for host in configuration.listenAddresses {
                if configuration.transports.contains(.udp) {
                    for core in cores {
                        let channel = try await udpListener(host: host, core: core)
                        listeners.append(channel)
                        if core.eventLoop === cores[0].eventLoop, let a = channel.localAddress { bound.append((.udp, a)) }
                    }
                }
                if configuration.transports.contains(.tcp) {
                    let channel = try await streamListener(host: host, port: configuration.port, transport: .tcp, tls: nil, cores: byLoop)
                    listeners.append(channel)
                    if let a = channel.localAddress { bound.append((.tcp, a)) }
                }
                if configuration.transports.contains(.tls), let tls = configuration.tls {
                    let context = try NIOSSLContext(configuration: tls)
                    let channel = try await streamListener(host: host, port: configuration.tlsPort, transport: .tls, tls: context, cores: byLoop)
                    listeners.append(channel)
                    if let a = channel.localAddress { bound.append((.tls, a)) }
                }
            }
        } catch {
            for l in listeners { try? await l.close() }
            throw error
        }
        state.withLock { $0.started = true; $0.listeners = listeners }
        boundAddresses.withLock { $0 = bound }
        for (t, a) in bound {
            shared.logger.info("TURN listening", metadata: ["transport": "\(t.rawValue)", "address": "\(a)"])
        }
        shared.logger.info("TURN relay addresses", metadata: ["relay": "\(configuration.relayAddresses)", "realm": "\(configuration.realm)"])
    }

    /// Closes the listeners and every allocation, then stops the event loops.
    public func stop() async {
        let (listeners, cores) = state.withLock { s -> ([any Channel], [NIOLoopBound<TURNLoopCore>]) in
            let r = (s.listeners, s.cores)
            s.listeners = []
            s.cores = []
            return r
        }
        for l in listeners { try? await l.close() }
        for c in cores {
            try? await c.eventLoop.submit { c.value.shutdown() }.get()
        }
        try? await group.shutdownGracefully()
        shared.logger.info("TURN stopped")
    }

    /// Whether the listeners are bound and not yet closed.
    public var isRunning: Bool { state.withLock { $0.started && !$0.listeners.isEmpty } }

    /// Allocations, permissions and channels alive now (all loops).
    public var liveCounts: (allocations: Int, permissions: Int, channels: Int) {
        (shared.metrics.allocationCount.load(ordering: .relaxed), shared.metrics.permissionCount.load(ordering: .relaxed), shared.metrics.channelCount.load(ordering: .relaxed))
    }

    // MARK: listeners

    private func udpListener(host: String, core: NIOLoopBound<TURNLoopCore>) async throws -> any Channel {
        let count = max(1, configuration.vectorReadCount)
        return try await DatagramBootstrap(group: core.eventLoop)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.Types.SocketOption(level: .socket, name: NIOBSDSocket.Option(rawValue: SO_REUSEPORT)), value: 1)
            .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
            .channelOption(.socketOption(.so_sndbuf), value: 4 << 20)
            .channelOption(.datagramVectorReadMessageCount, value: count)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: count * 2048))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let core = core.value
                    let socket = ClientSocket(transport: .udp)
                    try channel.pipeline.syncOperations.addHandler(DatagramHandler(socket: socket, logger: core.logger) { [unowned socket] envelope in
                        core.receiveFromClient(envelope.data, remote: envelope.remoteAddress, socket: socket)
                    })
                }
            }
            .bind(host: host, port: configuration.port)
            .get()
    }

    private func streamListener(host: String, port: Int, transport: ClientTransport, tls: NIOSSLContext?, cores: [ObjectIdentifier: NIOLoopBound<TURNLoopCore>]) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let core = cores[ObjectIdentifier(channel.eventLoop)] else { throw ChannelError.ioOnClosedChannel }
                    let ops = channel.pipeline.syncOperations
                    if let tls { try ops.addHandler(NIOSSLServerHandler(context: tls)) }
                    try ops.addHandler(ByteToMessageHandler(StreamFrameDecoder()))
                    try ops.addHandler(ClientStreamHandler(core: core.value, socket: ClientSocket(transport: transport)))
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
    /// asks for an even one). Retries other ports when one is taken.
    func bindRelay(ip: IPAddress, choice: PortChoice, dontFragment: Bool, attempt: Int = 0) -> EventLoopFuture<any Channel> {
        let range = config.relayPorts
        var port: Int
        switch choice {
        case .exact(let p): port = Int(p)
        case .any: port = Int.random(in: range)
        case .even:
            port = Int.random(in: range) & ~1
            if port < range.lowerBound { port += 2 }
        }
        let address: SocketAddress
        do { address = try TransportAddress(ip: ip, port: UInt16(port)).socketAddress() } catch { return loop.makeFailedFuture(error) }
        // One read per readiness event: epoll is level-triggered, so a second datagram raises
        // another event, and a relay rarely holds more than one (saves the EAGAIN read).
        var bootstrap = DatagramBootstrap(group: loop)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 2048))
            .channelOption(.maxMessagesPerRead, value: 1)
        if dontFragment, ip.family == .ipv4 {
            let option = ChannelOptions.Types.SocketOption(level: NIOBSDSocket.OptionLevel(rawValue: CInt(IPPROTO_IP)), name: NIOBSDSocket.Option(rawValue: CInt(IP_MTU_DISCOVER)))
            let value = SocketOptionValue(IP_PMTUDISC_DO)
            bootstrap = bootstrap.channelOption(option, value: value)
        }
        return bootstrap.bind(to: address).assumeIsolated().flatMapError { error -> EventLoopFuture<any Channel> in
            if case .exact = choice { return self.loop.makeFailedFuture(error) }
            if attempt >= 48 { return self.loop.makeFailedFuture(error) }
            return self.bindRelay(ip: ip, choice: choice, dontFragment: dontFragment, attempt: attempt + 1)
        }.nonisolated()
    }

    /// Binds an even port and reserves the next one under `token` (EVEN-PORT with R, RFC 8656 §7.2).
    func bindEvenPairReserving(ip: IPAddress, token: UInt64, dontFragment: Bool, attempt: Int = 0) -> EventLoopFuture<any Channel> {
        bindRelay(ip: ip, choice: .even, dontFragment: dontFragment).assumeIsolated().flatMap { (channel: any Channel) -> EventLoopFuture<any Channel> in
            guard let port = channel.localAddress?.port, port + 1 <= self.config.relayPorts.upperBound else {
                channel.close(promise: nil)
                return self.loop.makeFailedFuture(ChannelError.ioOnClosedChannel)
            }
            return self.bindRelay(ip: ip, choice: .exact(UInt16(port + 1)), dontFragment: false).assumeIsolated().map { placeholder -> any Channel in
                let reservation = Reservation(placeholder: placeholder, address: TransportAddress(ip: ip, port: UInt16(port + 1)), expiry: monotonicMilliseconds() + 30_000)
                self.shared.reservations.withLock { $0[token] = reservation }
                return channel
            }.flatMapError { error -> EventLoopFuture<any Channel> in
                channel.close(promise: nil)
                if attempt >= 16 { return self.loop.makeFailedFuture(error) }
                return self.bindEvenPairReserving(ip: ip, token: token, dontFragment: dontFragment, attempt: attempt + 1)
            }.nonisolated()
        }.nonisolated()
    }

    /// Wraps a bound relay socket: its handler, and the address advertised for it.
    func makeRelay(_ channel: any Channel) throws -> Relay {
        guard let local = channel.localAddress, let relayed = TransportAddress(local) else { throw ChannelError.ioOnClosedChannel }
        let advertisedIP = config.externalAddresses[relayed.ip] ?? relayed.ip
        let relay = Relay(channel: channel, relayed: relayed, advertised: TransportAddress(ip: advertisedIP, port: relayed.port))
        try channel.pipeline.syncOperations.addHandler(DatagramHandler(socket: relay, logger: logger) { [unowned relay] envelope in
            self.receiveFromPeer(envelope, relay: relay)
        })
        return relay
    }
}

// MARK: handlers

/// The handler of a UDP socket the core owns: the client listener of one event loop, or a
/// relay. It gives the core the socket's context for writes and hands it every datagram.
final class DatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>
    let socket: OutboundSocket
    let logger: Logger
    let receive: (AddressedEnvelope<ByteBuffer>) -> Void

    init(socket: OutboundSocket, logger: Logger, receive: @escaping (AddressedEnvelope<ByteBuffer>) -> Void) {
        self.socket = socket
        self.logger = logger
        self.receive = receive
    }

    func handlerAdded(context: ChannelHandlerContext) { socket.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { socket.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receive(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("UDP socket error", metadata: ["error": "\(error)"])
    }
}

/// One TCP or TLS client connection (RFC 8656 §3.1): its allocation lives as long as it does.
final class ClientStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let core: TURNLoopCore
    let socket: ClientSocket
    var remote: SocketAddress?

    init(core: TURNLoopCore, socket: ClientSocket) {
        self.core = core
        self.socket = socket
    }

    func handlerAdded(context: ChannelHandlerContext) {
        socket.context = context
        remote = context.channel.remoteAddress
    }

    func channelActive(context: ChannelHandlerContext) {
        remote = context.channel.remoteAddress
        scheduleIdleCheck(context: context)
        context.fireChannelActive()
    }

    /// A connection that holds no allocation for ``TURNServerConfiguration/streamIdleTimeout``
    /// seconds is closed, so idle connections cannot pile up.
    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        let timeout = core.config.streamIdleTimeout
        guard timeout > 0 else { return }
        context.eventLoop.assumeIsolated().scheduleTask(in: .seconds(Int64(timeout))) { [weak self] in
            guard let self, let remote = self.remote, context.channel.isActive else { return }
            let key = ClientKey(socket: ObjectIdentifier(self.socket), remote: remote)
            if self.core.allocations[key] == nil && !self.core.pending.contains(key) {
                self.core.logger.debug("closing idle TURN stream", metadata: ["client": "\(remote)"])
                context.close(promise: nil)
            } else {
                self.scheduleIdleCheck(context: context)
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let remote else { return }
        core.receiveFromClient(unwrapInboundIn(data), remote: remote, socket: socket)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let remote { core.connectionClosed(socket, remote: remote) }
        socket.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        core.logger.debug("TURN stream closed on error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
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
