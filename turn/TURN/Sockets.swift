import Datapath
import NIOCore
import STUN

/// A client-facing socket (RFC 8656 §3.1): the shared UDP listener of one loop, or one
/// TCP/TLS connection.
enum ClientSocket {
    case udp(UDPListener)
    case stream(StreamConnection)

    var transport: ClientTransport {
        switch self {
        case .udp: .udp
        case .stream(let c): c.transport
        }
    }

    /// Stream connections need ChannelData padded to four bytes (RFC 8656 §12.5).
    var isStream: Bool { if case .stream = self { true } else { false } }

    var id: ObjectIdentifier {
        switch self {
        case .udp(let l): ObjectIdentifier(l)
        case .stream(let c): ObjectIdentifier(c)
        }
    }

    /// Sends one message to a client on this socket (a UDP one leaves with the loop's next flush).
    func send(_ bytes: UnsafeRawBufferPointer, to remote: DatagramAddress) {
        switch self {
        case .udp(let l): l.output.append(bytes, to: remote)
        case .stream(let c): c.send(bytes)
        }
    }
}

/// The UDP client listener of one loop (all loops share the port through SO_REUSEPORT):
/// reads with `recvmmsg`, and collects what goes back to clients for one `sendmmsg` at the
/// end of the loop iteration.
final class UDPListener: ReadableHandler {
    let socket: UDPSocket
    let input: ReceiveBatch
    let output: SendBatch
    unowned let core: TURNLoopCore

    init(socket: UDPSocket, vectorReadCount: Int, core: TURNLoopCore) {
        self.socket = socket
        self.input = ReceiveBatch(capacity: vectorReadCount)
        self.output = SendBatch(socket: socket, capacity: 64)
        self.core = core
    }

    /// Reads batch after batch until a short one shows the socket empty (at most
    /// ``drainRounds``): under receive moderation the loop pauses after this wake-up, and what
    /// a single batch left behind would wait out the pause.
    func readable() {
        let me = ClientSocket.udp(self)
        input.drain(socket, rounds: Self.drainRounds) { i in
            if let source = input.source(i) { core.receiveFromClient(input.payload(i), remote: source, socket: me) }
            return true
        }
    }

    /// Batches read per readiness at most, so one busy listener cannot hold its loop.
    static let drainRounds = 8
}

/// One TCP or TLS client connection: its NIO channel (whose handler feeds frames to the
/// core's loop) and its remote address. Writes go through the channel from any thread.
final class StreamConnection: Sendable {
    let channel: any Channel
    let transport: ClientTransport
    let remote: DatagramAddress

    init(channel: any Channel, transport: ClientTransport, remote: DatagramAddress) {
        self.channel = channel
        self.transport = transport
        self.remote = remote
    }

    /// The 5-tuple key of this connection.
    var key: ClientKey { ClientKey(socket: ObjectIdentifier(self), remote: remote) }

    func send(_ bytes: UnsafeRawBufferPointer) {
        channel.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
    }

    func close() { channel.close(promise: nil) }
}

/// The relayed transport address of an allocation: a UDP socket on a relay address
/// (RFC 8656 §2: "relayed transport address"), watched by the core's loop.
final class Relay: ReadableHandler {
    let family: AddressFamily
    let socket: UDPSocket
    /// The address the socket is bound to.
    let relayed: TransportAddress
    /// The address advertised in XOR-RELAYED-ADDRESS (the external one behind a 1:1 NAT).
    let advertised: TransportAddress
    unowned let core: TURNLoopCore
    /// The allocation this relay belongs to: set by Allocate, cleared by
    /// ``TURNLoopCore/closeRelay(_:)``, which every deletion runs for each of its relays.
    /// A strong reference (not `weak`) so that each datagram reads it without a weak load and
    /// the allocation keeps its reference count inline (a weakly referenced object moves its
    /// count to a side table, which makes every retain and release slower).
    var allocation: Allocation?

    /// - Parameter externalAddresses: relay IP → the IP advertised for it behind a 1:1 NAT.
    init(socket: UDPSocket, externalAddresses: [IPAddress: IPAddress], core: TURNLoopCore) {
        let relayed = TransportAddress(socket.localAddress)
        self.socket = socket
        self.relayed = relayed
        self.advertised = TransportAddress(ip: externalAddresses[relayed.ip] ?? relayed.ip, port: relayed.port)
        self.family = relayed.ip.family
        self.core = core
    }

    func readable() { core.receiveFromPeer(relay: self) }
}

/// Identifies a client's 5-tuple on one loop: the client socket it reached us on
/// (a UDP listener or a TCP/TLS connection) and its remote address (RFC 8656 §2).
struct ClientKey: Hashable {
    let socket: ObjectIdentifier
    let remote: DatagramAddress
}

/// One allocation (RFC 8656 §2): the client's 5-tuple, its credentials, its relayed
/// transport address(es) and its ``AllocationState``.
final class Allocation {
    let key: ClientKey
    let client: ClientSocket
    let clientRemote: DatagramAddress
    let clientAddress: TransportAddress
    let username: String
    /// The quota owner: the user part of a REST-API username.
    let quotaUser: String
    var state: AllocationState
    var relays: [Relay]
    /// The Allocate transaction and its success response, resent on retransmission (§7.2).
    let allocateTransaction: TransactionID
    var allocateResponse: [UInt8] = []
    /// Relayed-bandwidth limit, when configured.
    var bandwidth: TokenBucket?

    init(key: ClientKey, client: ClientSocket, clientAddress: TransportAddress, username: String, quotaUser: String, state: AllocationState, relays: [Relay], allocateTransaction: TransactionID) {
        self.key = key
        self.client = client
        self.clientRemote = key.remote
        self.clientAddress = clientAddress
        self.username = username
        self.quotaUser = quotaUser
        self.state = state
        self.relays = relays
        self.allocateTransaction = allocateTransaction
    }

    @inline(__always)
    func relay(for family: AddressFamily) -> Relay? {
        if relays.count == 1 { return relays[0].family == family ? relays[0] : nil }
        return relays.first { $0.family == family }
    }

    var families: [AddressFamily] { relays.map(\.family) }
}
