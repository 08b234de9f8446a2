import Datapath
import Foundation
import Logging
import NIOCore
import STUN
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What every event loop of one server shares: configuration, credentials, quotas,
/// reservations and metrics. Only the control path touches the locks here.
final class TURNShared: Sendable {
    let config: TURNServerConfiguration
    let authenticator: RESTAuthenticator
    let nonces: NonceIssuer
    let policy: PeerPolicy
    let metrics: TURNMetrics
    let logger: Logger
    let perUser = Mutex<[String: Int]>([:])
    let reservations = Mutex<[UInt64: Reservation]>([:])
    /// Where new allocations relay: the first relay address of each family, and the external
    /// address advertised for each relay address behind a 1:1 NAT. Changed live by
    /// ``TURNServer/updateRelayAddresses(_:externalAddresses:)``; read only by Allocate.
    struct RelayPlan: Sendable {
        var ipv4: IPAddress?
        var ipv6: IPAddress?
        var external: [IPAddress: IPAddress]

        init(_ addresses: [IPAddress], external: [IPAddress: IPAddress]) {
            ipv4 = addresses.first { $0.family == .ipv4 }
            ipv6 = addresses.first { $0.family == .ipv6 }
            self.external = external
        }
    }

    let relays: Mutex<RelayPlan>

    init(config: TURNServerConfiguration, secrets: SharedSecrets, logger: Logger) {
        self.config = config
        self.authenticator = RESTAuthenticator(realm: config.realm, secrets: secrets)
        self.nonces = NonceIssuer(lifetime: config.nonceLifetime)
        self.policy = config.peerPolicy()
        self.metrics = TURNMetrics()
        self.logger = logger
        self.relays = Mutex(RelayPlan(config.relayAddresses, external: config.externalAddresses))
    }

    func relayIP(for family: AddressFamily) -> IPAddress? { relays.withLock { family == .ipv4 ? $0.ipv4 : $0.ipv6 } }

    var externalAddresses: [IPAddress: IPAddress] { relays.withLock { $0.external } }

    /// Takes one allocation from the total and the user's quota (RFC 8656 §7.2 step 10).
    func acquireQuota(user: String) -> Bool {
        let total = metrics.allocationCount.add(1, ordering: .relaxed).newValue
        if total > config.totalQuota {
            metrics.allocationCount.subtract(1, ordering: .relaxed)
            return false
        }
        let ok = perUser.withLock { d -> Bool in
            let n = d[user, default: 0]
            if config.userQuota > 0 && n >= config.userQuota { return false }
            d[user] = n + 1
            return true
        }
        if !ok { metrics.allocationCount.subtract(1, ordering: .relaxed) }
        return ok
    }

    func releaseQuota(user: String) {
        metrics.allocationCount.subtract(1, ordering: .relaxed)
        perUser.withLock { d in
            let n = d[user, default: 1] - 1
            d[user] = n > 0 ? n : nil
        }
    }
}

/// A port held for a later Allocate with RESERVATION-TOKEN (RFC 8656 §7.2, EVEN-PORT R bit).
struct Reservation: Sendable {
    let placeholder: UDPSocket
    let address: TransportAddress
    let expiry: Int64
}

#if canImport(Glibc)
/// glibc's `malloc_trim` (malloc.h, which the Glibc module does not import).
@_silgen_name("malloc_trim")
func glibcMallocTrim(_ pad: Int) -> CInt
#endif

/// Monotonic milliseconds.
@inline(__always)
func monotonicMilliseconds() -> Int64 { Int64(NIODeadline.now().uptimeNanoseconds / 1_000_000) }

/// The TURN server's work on one datapath loop: the allocations whose client 5-tuples
/// arrive on this loop, their relays, and the request handlers of RFC 8656 §7–§12.
/// Confined to its loop's thread; never touched from elsewhere.
final class TURNLoopCore {
    let loop: DatapathLoop
    let shared: TURNShared
    var allocations: [ClientKey: Allocation] = [:]
    var listeners: [UDPListener] = []
    /// Coarse clocks, refreshed on every housekeeping tick and on the control path.
    var now: Int64 = monotonicMilliseconds()
    var unixNow = Int(Date().timeIntervalSince1970)
    var limiter: RateLimiter
    var counters = LoopCounters()
    var ticks = 0
    var stopped = false
    /// Allocations deleted since memory was last handed back to the system.
    var deletedSinceTrim = 0
    /// Receive buffer for peer data bound to stream clients (any UDP datagram fits).
    let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 65_536, alignment: 16)
    var logger: Logger { shared.logger }
    var config: TURNServerConfiguration { shared.config }

    init(loop: DatapathLoop, shared: TURNShared) {
        self.loop = loop
        self.shared = shared
        self.limiter = RateLimiter(perSecond: shared.config.maxRequestsPerSecond)
        loop.addIterationEndHook { [unowned self] in flushListeners() }
    }

    deinit { scratch.deallocate() }

    /// Binds this loop's UDP client listener on `address` (SO_REUSEPORT: every loop binds
    /// the same port) and watches it.
    func addUDPListener(_ address: DatagramAddress) throws(SocketError) -> DatagramAddress {
        let socket = try UDPSocket(binding: address, options: .init(reusePort: true, receiveBufferSize: 4 << 20, sendBufferSize: 4 << 20))
        let listener = UDPListener(socket: socket, vectorReadCount: max(1, config.vectorReadCount), core: self)
        try loop.register(socket.fd, listener)
        listeners.append(listener)
        return socket.localAddress
    }

    // MARK: housekeeping

    func startTicking() {
        loop.schedule(inMilliseconds: 250) { [self] in
            guard !stopped else { return }
            tick()
            startTicking()
        }
    }

    func refreshClock() {
        now = monotonicMilliseconds()
        unixNow = Int(Date().timeIntervalSince1970)
    }

    /// Every 250 ms: refresh the clock; every second: expire allocations, permissions and
    /// channels (RFC 8656 §7, §9, §12), forget idle rate buckets, publish counters.
    func tick() {
        refreshClock()
        ticks += 1
        guard ticks % 4 == 0 else { return }
        var expired: [Allocation] = []
        for a in allocations.values {
            if a.state.isExpired(at: now) {
                expired.append(a)
            } else if !a.state.permissions.isEmpty || !a.state.channels.isEmpty {
                let (p, c) = a.state.sweep(now: now)
                if p > 0 { shared.metrics.permissionCount.subtract(p, ordering: .relaxed) }
                if c > 0 { shared.metrics.channelCount.subtract(c, ordering: .relaxed) }
            }
        }
        for a in expired { delete(a, reason: .expired) }
        limiter.sweep(now: now)
        let stale = shared.reservations.withLock { r -> [Reservation] in
            let gone = r.filter { $0.value.expiry <= now }
            for k in gone.keys { r[k] = nil }
            return Array(gone.values)
        }
        for r in stale { r.placeholder.close() }
        for l in listeners {
            counters.dropSendFailed += l.output.takeTotals().dropped
        }
        counters.publish(to: shared.metrics)
        // glibc keeps freed heap pages; after a wave of releases give them back, at most
        // once a second, so RSS follows the number of live allocations.
        if deletedSinceTrim >= 256 || (deletedSinceTrim > 0 && allocations.isEmpty) {
            deletedSinceTrim = 0
            #if canImport(Glibc)
            _ = glibcMallocTrim(0)
            #endif
        }
    }

    // MARK: output

    /// Sends what this iteration queued for UDP clients: one `sendmmsg` per listener.
    func flushListeners() {
        for l in listeners where l.output.pending > 0 { l.output.flush() }
    }

    func send(_ bytes: [UInt8], to client: ClientContext) {
        bytes.withUnsafeBytes { client.socket.send($0, to: client.remote) }
    }

    // MARK: input from clients

    /// A datagram or stream frame from a client.
    @inline(__always)
    func receiveFromClient(_ bytes: UnsafeRawBufferPointer, remote: DatagramAddress, socket: ClientSocket) {
        guard let first = bytes.first else { return }
        if first & 0xC0 == 0x40 {
            channelDataFromClient(bytes, key: ClientKey(socket: socket.id, remote: remote))
        } else if first < 4 {
            stunFromClient(bytes, remote: remote, socket: socket)
        } else {
            counters.dropMalformed += 1
        }
    }

    /// A frame from a TCP/TLS connection, handed over from its NIO channel.
    func receiveFromStream(_ frame: ByteBuffer, connection: StreamConnection) {
        frame.withUnsafeReadableBytes { receiveFromClient($0, remote: connection.remote, socket: .stream(connection)) }
    }

    /// ChannelData from the client (RFC 8656 §12.6): to the peer bound to the channel,
    /// sent straight from the receive buffer.
    @inline(__always)
    func channelDataFromClient(_ bytes: UnsafeRawBufferPointer, key: ClientKey) {
        guard let allocation = allocations[key] else { counters.dropNoAllocation += 1; return }
        guard bytes.count >= 4 else { counters.dropMalformed += 1; return }
        let number = UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt16.self))
        let length = Int(UInt16(bigEndian: bytes.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        guard bytes.count - 4 >= length else { counters.dropMalformed += 1; return }
        guard let binding = allocation.state.channel(number, now: now) else { counters.dropNoChannel += 1; return }
        guard let relay = allocation.relay(for: binding.peer.ip.family) else { counters.dropNoChannel += 1; return }
        if allocation.bandwidth != nil, !allocation.bandwidth!.take(Double(length) * 8, now: now) {
            counters.dropBandwidth += 1
            return
        }
        relayToPeer(UnsafeRawBufferPointer(rebasing: bytes[4..<(4 + length)]), to: DatagramAddress(binding.peer), relay: relay)
    }

    /// Sends client data out of a relay to a peer.
    @inline(__always)
    func relayToPeer(_ payload: UnsafeRawBufferPointer, to peer: DatagramAddress, relay: Relay) {
        switch relay.socket.send(payload, to: peer) {
        case .sent:
            counters.packetsClientToPeer += 1
            counters.bytesClientToPeer += payload.count
        case .dropped, .failed:
            counters.dropSendFailed += 1
        }
    }

    /// Data from a peer on a relay (RFC 8656 §11.3 and §12.7): as ChannelData when a
    /// channel is bound to the peer, else as a Data indication; dropped without permission.
    /// For a UDP client the datagram is read straight into the listener's next outgoing
    /// slot, four bytes in, so the ChannelData header is written in front of it in place.
    @inline(__always)
    func receiveFromPeer(relay: Relay) {
        guard let allocation = relay.allocation else {
            _ = relay.socket.receive(into: scratch)  // an orphan socket still has to be drained
            return
        }
        switch allocation.client {
        case .udp(let listener):
            let slot = listener.output.nextSlot()
            guard let (length, peer) = receivePeerDatagram(relay: relay, allocation: allocation, into: UnsafeMutableRawBufferPointer(rebasing: slot[4...])) else { return }
            if let number = allocation.state.channelNumber(for: peer, now: now) {
                slot.storeBytes(of: number.bigEndian, toByteOffset: 0, as: UInt16.self)
                slot.storeBytes(of: UInt16(length).bigEndian, toByteOffset: 2, as: UInt16.self)
                listener.output.commit(length: 4 + length, to: allocation.clientRemote)
            } else {
                let indication = dataIndication(UnsafeRawBufferPointer(rebasing: slot[4..<(4 + length)]), from: peer)
                listener.output.append(indication, to: allocation.clientRemote)
            }
            counters.packetsPeerToClient += 1
            counters.bytesPeerToClient += length
        case .stream(let connection):
            guard let (length, peer) = receivePeerDatagram(relay: relay, allocation: allocation, into: scratch) else { return }
            let data = UnsafeRawBufferPointer(rebasing: scratch[0..<length])
            let message = allocation.state.channelNumber(for: peer, now: now).map { ChannelData.encode(channelNumber: $0, data: data, padded: true) }
                ?? dataIndication(data, from: peer)
            message.withUnsafeBytes { connection.send($0) }
            counters.packetsPeerToClient += 1
            counters.bytesPeerToClient += length
        }
    }

    /// Reads one datagram from a relay into `buffer` and applies the permission and
    /// bandwidth checks: its length and sender when it may go to the client.
    @inline(__always)
    func receivePeerDatagram(relay: Relay, allocation: Allocation, into buffer: UnsafeMutableRawBufferPointer) -> (Int, TransportAddress)? {
        guard let (length, source, truncated) = relay.socket.receive(into: buffer) else { return nil }
        guard !truncated else { counters.dropMalformed += 1; return nil }
        let peer = TransportAddress(source)
        guard allocation.state.hasPermission(for: peer.ip, now: now) else { counters.dropNoPermission += 1; return nil }
        if allocation.bandwidth != nil, !allocation.bandwidth!.take(Double(length) * 8, now: now) {
            counters.dropBandwidth += 1
            return nil
        }
        return (length, peer)
    }

    /// A Data indication carrying `data` from `peer` (RFC 8656 §11.3).
    func dataIndication(_ data: UnsafeRawBufferPointer, from peer: TransportAddress) -> [UInt8] {
        var m = STUNMessage(type: STUNMessageType(method: .data, messageClass: .indication))
        m.attributes = [
            .xorAddress(.xorPeerAddress, peer, transactionID: m.transactionID),
            STUNAttribute(type: .data, value: Array(data)),
        ]
        return m.encode()
    }

    /// A client's stream connection closed: its allocation goes with it (RFC 8656 §3.1).
    func connectionClosed(_ connection: StreamConnection) {
        if let a = allocations[connection.key] { delete(a, reason: .connectionClosed) }
    }

    /// Whether a stream connection holds an allocation.
    func holdsAllocation(_ connection: StreamConnection) -> Bool {
        allocations[connection.key] != nil
    }

    /// Stops watching a relay socket and closes it.
    func closeRelay(_ relay: Relay) {
        relay.allocation = nil
        loop.deregister(relay.socket.fd)
        relay.socket.close()
    }

    /// Deletes an allocation: closes its relays, releases its quota and counts.
    func delete(_ allocation: Allocation, reason: DeletionReason) {
        guard allocations.removeValue(forKey: allocation.key) != nil else { return }
        for r in allocation.relays { closeRelay(r) }
        // Over TCP/TLS the connection belongs to the allocation (RFC 8656 §3.1).
        if case .stream(let connection) = allocation.client, reason == .expired { connection.close() }
        let live = allocation.state.liveCounts
        if live.permissions > 0 { shared.metrics.permissionCount.subtract(live.permissions, ordering: .relaxed) }
        if live.channels > 0 { shared.metrics.channelCount.subtract(live.channels, ordering: .relaxed) }
        shared.releaseQuota(user: allocation.quotaUser)
        shared.metrics.allocationsDeleted.increment()
        deletedSinceTrim += 1
        logger.debug("allocation deleted", metadata: ["client": "\(allocation.clientAddress)", "reason": "\(reason.rawValue)"])
    }

    /// Closes everything this loop owns (server shutdown).
    func shutdown() {
        stopped = true
        for a in Array(allocations.values) { delete(a, reason: .shutdown) }
        flushListeners()
        for l in listeners {
            loop.deregister(l.socket.fd)
            l.socket.close()
        }
        listeners = []
        counters.publish(to: shared.metrics)
    }
}

/// Why an allocation ends (RFC 8656 §7: lifetime expiry, Refresh with LIFETIME 0, the
/// client's stream closing, or the server stopping).
enum DeletionReason: String {
    case expired
    case refreshZero = "refresh 0"
    case connectionClosed = "connection closed"
    case shutdown
}

/// Where a request came from and where its response goes.
struct ClientContext {
    let socket: ClientSocket
    let remote: DatagramAddress
    let address: TransportAddress
    var key: ClientKey { ClientKey(socket: socket.id, remote: remote) }
}

extension AllocationState {
    /// Entries still counted in the permission and channel gauges.
    var liveCounts: (permissions: Int, channels: Int) {
        (permissions.count, channels.values.filter { !$0.expiredCounted }.count)
    }
}
