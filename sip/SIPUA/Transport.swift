// SIPUA — the SIP stack at run time: transports, the transaction layer, registration.
//
// `sip/SIP` holds the protocol as values (messages, transaction state machines, digest,
// the registration and back-off logic); this module runs them on sockets and timers.
// Everything of one SIPEndpoint happens on one SwiftNIO event loop: its channels, its
// timers and the calls into its transaction users, so it takes no locks.

import Logging
import NIOCore
import NIOPosix
import NIOSSL
import SIP

/// A SIP transport (RFC 3261 §18): UDP, or TCP and TLS, which are reliable and framed by
/// Content-Length.
public enum SIPTransport: String, Hashable, Sendable, CaseIterable {
    case udp, tcp, tls

    public var isReliable: Bool { self != .udp }
    /// The transport token of Via (`SIP/2.0/UDP`).
    public var viaToken: String { rawValue.uppercased() }
    /// 5060, or 5061 for TLS (RFC 3261 §19.1.2).
    public var defaultPort: Int { self == .tls ? 5061 : 5060 }

    public init?(viaToken: String) { self.init(rawValue: viaToken.lowercased()) }
}

/// Where a message goes, or came from: a transport and a socket address (and, for TLS, the
/// name the peer's certificate must carry).
public struct SIPDestination: Hashable, Sendable, CustomStringConvertible {
    public var transport: SIPTransport
    public var address: SocketAddress
    public var serverName: String?

    public init(transport: SIPTransport, address: SocketAddress, serverName: String? = nil) {
        self.transport = transport
        self.address = address
        self.serverName = serverName
    }

    /// A destination given as an IP address literal and a port (no DNS).
    public init(transport: SIPTransport, ipAddress: String, port: Int, serverName: String? = nil) throws {
        self.init(transport: transport, address: try SocketAddress(ipAddress: ipAddress, port: port), serverName: serverName)
    }

    /// The address's IP as text ("" when it has none).
    public var ipAddress: String { address.ipAddress ?? "" }
    public var port: Int { address.port ?? 0 }

    public var description: String { "\(transport.rawValue):\(HostPort.format(host: ipAddress, port: port))" }

    var connectionKey: ConnectionKey { ConnectionKey(transport: transport, address: address) }
}

/// A local address SIP listens on.
public struct SIPListenAddress: Hashable, Sendable {
    public var transport: SIPTransport
    public var host: String
    public var port: Int

    public init(transport: SIPTransport, host: String, port: Int) {
        self.transport = transport
        self.host = host
        self.port = port
    }
}

struct ConnectionKey: Hashable {
    var transport: SIPTransport
    var address: SocketAddress
}

/// What a transport hands up: a datagram to parse, or a message a stream framed.
enum SIPTransportInput {
    case datagram([UInt8])
    case message(SIPMessage)
}

/// Why a send failed.
public struct SIPTransportError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The transports of one endpoint (RFC 3261 §18): a UDP socket per listen address, TCP
/// and TLS listeners, and the stream connections, each kept by the peer's address so a
/// response or a later request to the same peer reuses it (§18.2.2, RFC 5923's intent).
/// Runs on its event loop only.
final class SIPTransportLayer: @unchecked Sendable {
    let loop: any EventLoop
    let limits: SIPLimits
    let serverTLS: NIOSSLContext?
    let clientTLS: NIOSSLContext?
    let logger: Logger
    /// Everything read, with where it came from.
    var onInput: (SIPTransportInput, SIPDestination) -> Void = { _, _ in }
    /// A stream that could not be framed (it is closed).
    var onStreamError: (SIPParseError, SIPDestination) -> Void = { _, _ in }

    private var datagramChannels: [any Channel] = []
    private var listeners: [any Channel] = []
    private var connections: [ConnectionKey: StreamConnection] = [:]
    private(set) var boundAddresses: [SIPListenAddress] = []

    init(loop: any EventLoop, limits: SIPLimits, serverTLS: NIOSSLContext?, clientTLS: NIOSSLContext?, logger: Logger) {
        self.loop = loop
        self.limits = limits
        self.serverTLS = serverTLS
        self.clientTLS = clientTLS
        self.logger = logger
    }

    /// Binds every listen address (port 0 picks one; ``boundAddresses`` says which).
    func start(_ addresses: [SIPListenAddress]) async throws {
        for address in addresses {
            let channel: any Channel
            switch address.transport {
            case .udp:
                channel = try await DatagramBootstrap(group: loop)
                    .channelOption(.socketOption(.so_reuseaddr), value: 1)
                    .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
                    .channelInitializer { [self] channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(SIPDatagramHandler(layer: self))
                        }
                    }
                    .bind(host: address.host, port: address.port).get()
                loop.execute { self.datagramChannels.append(channel) }
            case .tcp, .tls:
                if address.transport == .tls && serverTLS == nil { throw SIPTransportError(description: "TLS listen address without a certificate") }
                channel = try await ServerBootstrap(group: loop)
                    .serverChannelOption(.backlog, value: 256)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelInitializer { [self] channel in
                        channel.eventLoop.makeCompletedFuture {
                            guard let remote = channel.remoteAddress else { throw ChannelError.ioOnClosedChannel }
                            try self.addStreamHandlers(channel, key: ConnectionKey(transport: address.transport, address: remote), server: true, serverName: nil)
                        }
                    }
                    .bind(host: address.host, port: address.port).get()
                loop.execute { self.listeners.append(channel) }
            }
            let port = channel.localAddress?.port ?? address.port
            let bound = SIPListenAddress(transport: address.transport, host: address.host, port: port)
            try await loop.submit { self.boundAddresses.append(bound) }.get()
        }
    }

    /// Closes every socket and connection.
    func stop() async {
        let channels: [any Channel] = (try? await loop.submit {
            let all = self.datagramChannels + self.listeners + self.connections.values.compactMap(\.channel)
            self.datagramChannels = []
            self.listeners = []
            self.connections = [:]
            return all
        }.get()) ?? []
        for channel in channels { try? await channel.close() }
    }

    /// The bound port of `transport` (the first listener of it).
    func port(of transport: SIPTransport) -> Int? {
        boundAddresses.first { $0.transport == transport }?.port
    }

    /// Sends `bytes`: a datagram from the first UDP socket of the address family, or on the
    /// stream connection to the destination, opened first when there is none.
    /// `completion` gets nil once written, or the error.
    func send(_ bytes: [UInt8], to destination: SIPDestination, completion: @escaping (SIPTransportError?) -> Void) {
        loop.preconditionInEventLoop()
        switch destination.transport {
        case .udp:
            let family = destination.address.protocol
            guard let channel = datagramChannels.first(where: { $0.localAddress?.protocol == family }) ?? datagramChannels.first else {
                completion(SIPTransportError(description: "no UDP socket"))
                return
            }
            var buffer = channel.allocator.buffer(capacity: bytes.count)
            buffer.writeBytes(bytes)
            let promise = loop.makePromise(of: Void.self)
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: destination.address, data: buffer), promise: promise)
            promise.futureResult.assumeIsolated().whenComplete { result in
                if case .failure(let error) = result { completion(SIPTransportError(description: "\(error)")) } else { completion(nil) }
            }
        case .tcp, .tls:
            let key = destination.connectionKey
            let connection = connections[key] ?? openConnection(destination)
            connection.send(bytes, completion: completion)
        }
    }

    /// Whether a stream connection to `destination` is open (or opening).
    func hasConnection(to destination: SIPDestination) -> Bool { connections[destination.connectionKey] != nil }

    private func openConnection(_ destination: SIPDestination) -> StreamConnection {
        let key = destination.connectionKey
        let connection = StreamConnection(loop: loop)
        connections[key] = connection
        if destination.transport == .tls && clientTLS == nil {
            fail(key, connection, SIPTransportError(description: "TLS without a client context"))
            return connection
        }
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try self.addStreamHandlers(channel, key: key, server: false, serverName: destination.serverName)
                }
            }
            .connect(to: destination.address)
            .assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let channel): connection.connected(channel)
                case .failure(let error): fail(key, connection, SIPTransportError(description: "connect to \(destination): \(error)"))
                }
            }
        return connection
    }

    private func fail(_ key: ConnectionKey, _ connection: StreamConnection, _ error: SIPTransportError) {
        if connections[key] === connection { connections[key] = nil }
        connection.failed(error)
    }

    /// TLS (when the transport is TLS), then the SIP framing handler.
    private func addStreamHandlers(_ channel: any Channel, key: ConnectionKey, server: Bool, serverName: String?) throws {
        let ops = channel.pipeline.syncOperations
        if key.transport == .tls {
            if server, let serverTLS {
                try ops.addHandler(NIOSSLServerHandler(context: serverTLS))
            } else if let clientTLS {
                try ops.addHandler(NIOSSLClientHandler(context: clientTLS, serverHostname: serverName))
            }
        }
        try ops.addHandler(SIPStreamHandler(layer: self, key: key, limits: limits))
        if server {
            let connection = StreamConnection(loop: loop)
            connection.connected(channel)
            connections[key] = connection
        }
    }

    // MARK: from the handlers

    func streamClosed(_ key: ConnectionKey, channel: any Channel) {
        if let connection = connections[key], connection.channel === channel || connection.channel == nil {
            connections[key] = nil
            connection.failed(SIPTransportError(description: "connection closed"))
        }
    }

    func destination(_ key: ConnectionKey) -> SIPDestination { SIPDestination(transport: key.transport, address: key.address) }
}

/// One stream connection: the writes queued while it connects, then its channel.
final class StreamConnection {
    let loop: any EventLoop
    private(set) var channel: (any Channel)?
    private var pending: [([UInt8], (SIPTransportError?) -> Void)] = []
    private var error: SIPTransportError?

    init(loop: any EventLoop) { self.loop = loop }

    func send(_ bytes: [UInt8], completion: @escaping (SIPTransportError?) -> Void) {
        if let error { return completion(error) }
        guard let channel else { return pending.append((bytes, completion)) }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        let promise = loop.makePromise(of: Void.self)
        channel.writeAndFlush(buffer, promise: promise)
        promise.futureResult.assumeIsolated().whenComplete { result in
            if case .failure(let error) = result { completion(SIPTransportError(description: "\(error)")) } else { completion(nil) }
        }
    }

    func connected(_ channel: any Channel) {
        self.channel = channel
        let queued = pending
        pending = []
        for (bytes, completion) in queued { send(bytes, completion: completion) }
    }

    func failed(_ error: SIPTransportError) {
        self.error = error
        let queued = pending
        pending = []
        for (_, completion) in queued { completion(error) }
    }
}

/// Reads datagrams of a UDP socket (RFC 3261 §18.3: one message per datagram).
final class SIPDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let layer: SIPTransportLayer

    init(layer: SIPTransportLayer) { self.layer = layer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let bytes = Array(envelope.data.readableBytesView)
        layer.onInput(.datagram(bytes), SIPDestination(transport: .udp, address: envelope.remoteAddress))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // ICMP port unreachable and the like surface here on a UDP socket: not fatal.
        layer.logger.debug("SIP UDP socket error", metadata: ["error": "\(error)"])
    }
}

/// Frames a TCP or TLS stream into messages (RFC 3261 §18.3) and answers CRLF keep-alive
/// pings with a CRLF (RFC 5626 §3.5.1). A stream that cannot be framed is closed.
final class SIPStreamHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let layer: SIPTransportLayer
    let key: ConnectionKey
    private var framer: SIPStreamFramer

    init(layer: SIPTransportLayer, key: ConnectionKey, limits: SIPLimits) {
        self.layer = layer
        self.key = key
        framer = SIPStreamFramer(limits: limits)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        do {
            try framer.append(buffer.readableBytesView)
            while let item = try framer.next() {
                switch item {
                case .message(let message): layer.onInput(.message(message), layer.destination(key))
                case .keepAlivePing: context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: "\r\n")), promise: nil)
                case .keepAlivePong: break
                }
            }
        } catch {
            layer.onStreamError(error, layer.destination(key))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        layer.streamClosed(key, channel: context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        layer.logger.debug("SIP stream error", metadata: ["peer": "\(layer.destination(key))", "error": "\(error)"])
        context.close(promise: nil)
    }
}
