import NIOCore
import STUN

/// A socket the core writes to, flushed once per event-loop iteration so that the datagrams
/// of many flows leave in one `sendmmsg` (see ``TURNLoopCore/markForFlush(_:)``).
class OutboundSocket {
    /// The context of this socket's handler; writes go from here to the socket.
    var context: ChannelHandlerContext?
    var needsFlush = false

    @inline(__always)
    final func write(_ data: NIOAny) {
        context?.write(data, promise: nil)
    }
}

/// A client-facing socket: the shared UDP listener of one event loop, or one TCP/TLS connection.
final class ClientSocket: OutboundSocket {
    let transport: ClientTransport
    /// Stream connections need ChannelData padded to four bytes (RFC 8656 §12.5).
    var isStream: Bool { transport != .udp }

    init(transport: ClientTransport) {
        self.transport = transport
    }

    /// Sends a message to a client on this socket.
    @inline(__always)
    func send(_ buffer: ByteBuffer, to remote: SocketAddress) {
        if isStream {
            write(NIOAny(buffer))
        } else {
            write(NIOAny(AddressedEnvelope(remoteAddress: remote, data: buffer)))
        }
    }
}

/// The relayed transport address of an allocation: a UDP socket on a relay address
/// (RFC 8656 §2: "relayed transport address").
final class Relay: OutboundSocket {
    let family: AddressFamily
    /// The address the socket is bound to.
    let relayed: TransportAddress
    /// The address advertised in XOR-RELAYED-ADDRESS (the external one behind a 1:1 NAT).
    let advertised: TransportAddress
    let channel: any Channel
    weak var allocation: Allocation?

    init(channel: any Channel, relayed: TransportAddress, advertised: TransportAddress) {
        self.channel = channel
        self.relayed = relayed
        self.advertised = advertised
        self.family = relayed.ip.family
    }
}

/// Identifies a client's 5-tuple on one event loop: the client socket it reached us on
/// (a UDP listener or a TCP/TLS connection) and its remote address (RFC 8656 §2).
struct ClientKey: Hashable {
    let socket: ObjectIdentifier
    let remote: SocketAddress
}

/// One allocation (RFC 8656 §2): the client's 5-tuple, its credentials, its relayed
/// transport address(es) and its ``AllocationState``.
final class Allocation {
    let key: ClientKey
    let client: ClientSocket
    let clientRemote: SocketAddress
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

    init(key: ClientKey, client: ClientSocket, clientRemote: SocketAddress, clientAddress: TransportAddress, username: String, quotaUser: String, state: AllocationState, relays: [Relay], allocateTransaction: TransactionID) {
        self.key = key
        self.client = client
        self.clientRemote = clientRemote
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
