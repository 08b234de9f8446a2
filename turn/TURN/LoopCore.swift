import Foundation
import Logging
import NIOCore
import NIOPosix
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
    /// Relay address per family (the first configured one of each family).
    let relayIPv4: IPAddress?
    let relayIPv6: IPAddress?

    init(config: TURNServerConfiguration, secrets: SharedSecrets, logger: Logger) {
        self.config = config
        self.authenticator = RESTAuthenticator(realm: config.realm, secrets: secrets)
        self.nonces = NonceIssuer(lifetime: config.nonceLifetime)
        self.policy = config.peerPolicy()
        self.metrics = TURNMetrics()
        self.logger = logger
        self.relayIPv4 = config.relayAddresses.first { $0.family == .ipv4 }
        self.relayIPv6 = config.relayAddresses.first { $0.family == .ipv6 }
    }

    func relayIP(for family: AddressFamily) -> IPAddress? { family == .ipv4 ? relayIPv4 : relayIPv6 }

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
    let placeholder: any Channel
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

/// The TURN server's work on one event loop: the allocations whose client 5-tuples arrive
/// on this loop, their relays, and the request handlers of RFC 8656 §7–§12.
/// Confined to its loop; never touched from elsewhere.
final class TURNLoopCore {
    let loop: any EventLoop
    let shared: TURNShared
    var allocations: [ClientKey: Allocation] = [:]
    /// 5-tuples whose Allocate is waiting for its relay socket.
    var pending: Set<ClientKey> = []
    /// Coarse clocks, refreshed on every housekeeping tick and on the control path.
    var now: Int64 = monotonicMilliseconds()
    var unixNow = Int(Date().timeIntervalSince1970)
    var limiter: RateLimiter
    var counters = LoopCounters()
    var flushQueue: [OutboundSocket] = []
    var flushScheduled = false
    var ticks = 0
    var stopped = false
    /// Allocations deleted since memory was last handed back to the system.
    var deletedSinceTrim = 0
    let allocator = ByteBufferAllocator()
    var logger: Logger { shared.logger }
    var config: TURNServerConfiguration { shared.config }

    init(loop: any EventLoop, shared: TURNShared) {
        self.loop = loop
        self.shared = shared
        self.limiter = RateLimiter(perSecond: shared.config.maxRequestsPerSecond)
    }

    // MARK: housekeeping

    func startTicking() {
        loop.assumeIsolated().scheduleTask(in: .milliseconds(250)) { [self] in
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
        for r in stale { r.placeholder.close(promise: nil) }
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

    /// Queues a flush of `socket` at the end of this event-loop iteration, so the writes
    /// of one batch of reads leave together (one `sendmmsg` per socket).
    @inline(__always)
    func markForFlush(_ socket: OutboundSocket) {
        if socket.needsFlush { return }
        socket.needsFlush = true
        flushQueue.append(socket)
        if !flushScheduled {
            flushScheduled = true
            loop.assumeIsolated().execute { [self] in flushAll() }
        }
    }

    func flushAll() {
        flushScheduled = false
        let queue = flushQueue
        flushQueue.removeAll(keepingCapacity: true)
        for s in queue {
            s.needsFlush = false
            s.context?.flush()
        }
    }

    func send(_ bytes: [UInt8], to client: ClientContext) {
        var buffer = allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        client.socket.send(buffer, to: client.remote)
        markForFlush(client.socket)
    }

    // MARK: input from clients

    /// A datagram or stream frame from a client.
    @inline(__always)
    func receiveFromClient(_ buffer: ByteBuffer, remote: SocketAddress, socket: ClientSocket) {
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        if first & 0xC0 == 0x40 {
            channelDataFromClient(buffer, key: ClientKey(socket: ObjectIdentifier(socket), remote: remote))
        } else if first < 4 {
            stunFromClient(buffer, remote: remote, socket: socket)
        } else {
            counters.dropMalformed += 1
        }
    }

    /// ChannelData from the client (RFC 8656 §12.6): to the peer bound to the channel.
    @inline(__always)
    func channelDataFromClient(_ buffer: ByteBuffer, key: ClientKey) {
        guard let allocation = allocations[key] else { counters.dropNoAllocation += 1; return }
        let ri = buffer.readerIndex
        guard buffer.readableBytes >= 4,
              let number = buffer.getInteger(at: ri, as: UInt16.self),
              let length = buffer.getInteger(at: ri + 2, as: UInt16.self),
              buffer.readableBytes - 4 >= Int(length)
        else { counters.dropMalformed += 1; return }
        guard let binding = allocation.state.channel(number, now: now) else { counters.dropNoChannel += 1; return }
        guard let relay = allocation.relay(for: binding.peer.ip.family) else { counters.dropNoChannel += 1; return }
        if allocation.bandwidth != nil, !allocation.bandwidth!.take(Double(length) * 8, now: now) {
            counters.dropBandwidth += 1
            return
        }
        let payload = buffer.getSlice(at: ri + 4, length: Int(length))!
        // A relay gets about one datagram per read batch: flushing now is one sendmsg either way.
        relay.context?.writeAndFlush(NIOAny(AddressedEnvelope(remoteAddress: binding.peerSocketAddress, data: payload)), promise: nil)
        counters.packetsClientToPeer += 1
        counters.bytesClientToPeer += Int(length)
    }

    /// Data from a peer on a relay (RFC 8656 §11.3 and §12.7): as ChannelData when a
    /// channel is bound to the peer, else as a Data indication; dropped without permission.
    @inline(__always)
    func receiveFromPeer(_ envelope: AddressedEnvelope<ByteBuffer>, relay: Relay) {
        guard let allocation = relay.allocation else { return }
        guard let peer = TransportAddress(envelope.remoteAddress) else { return }
        guard allocation.state.hasPermission(for: peer.ip, now: now) else { counters.dropNoPermission += 1; return }
        let data = envelope.data
        let length = data.readableBytes
        if allocation.bandwidth != nil, !allocation.bandwidth!.take(Double(length) * 8, now: now) {
            counters.dropBandwidth += 1
            return
        }
        let client = allocation.client
        if let number = allocation.state.channelNumber(for: peer, now: now) {
            let padding = client.isStream ? (4 - length % 4) % 4 : 0
            var out = allocator.buffer(capacity: 4 + length + padding)
            out.writeInteger(number)
            out.writeInteger(UInt16(length))
            out.writeImmutableBuffer(data)
            if padding > 0 { out.writeRepeatingByte(0, count: padding) }
            client.send(out, to: allocation.clientRemote)
        } else {
            var m = STUNMessage(type: STUNMessageType(method: .data, messageClass: .indication))
            m.attributes = [
                .xorAddress(.xorPeerAddress, peer, transactionID: m.transactionID),
                STUNAttribute(type: .data, value: Array(data.readableBytesView)),
            ]
            let bytes = m.encode()
            var out = allocator.buffer(capacity: bytes.count)
            out.writeBytes(bytes)
            client.send(out, to: allocation.clientRemote)
        }
        markForFlush(client)
        counters.packetsPeerToClient += 1
        counters.bytesPeerToClient += length
    }

    /// A client's stream connection closed: its allocation goes with it (RFC 8656 §3.1).
    func connectionClosed(_ socket: ClientSocket, remote: SocketAddress) {
        let key = ClientKey(socket: ObjectIdentifier(socket), remote: remote)
        pending.remove(key)
        if let a = allocations[key] { delete(a, reason: .connectionClosed) }
    }

    /// Deletes an allocation: closes its relays, releases its quota and counts.
    func delete(_ allocation: Allocation, reason: DeletionReason) {
        guard allocations.removeValue(forKey: allocation.key) != nil else { return }
        for r in allocation.relays {
            r.allocation = nil
            r.channel.close(promise: nil)
        }
        // Over TCP/TLS the connection belongs to the allocation (RFC 8656 §3.1).
        if allocation.client.isStream, reason == .expired { allocation.client.context?.close(promise: nil) }
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
    let remote: SocketAddress
    let address: TransportAddress
    var key: ClientKey { ClientKey(socket: ObjectIdentifier(socket), remote: remote) }
}

extension AllocationState {
    /// Entries still counted in the permission and channel gauges.
    var liveCounts: (permissions: Int, channels: Int) {
        (permissions.count, channels.values.filter { !$0.expiredCounted }.count)
    }
}
