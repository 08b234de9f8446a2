import Datapath
import STUN

/// One UDP port serving every WebRTC leg of a media loop (DESIGN.md "One UDP port for all
/// browsers", as Pion's UDPMux and LiveKit's single-port mode): every leg advertises the
/// same host candidate (RFC 8445 §5.1.1.1), and datagrams are matched to their leg —
/// STUN Binding requests by the local ufrag in USERNAME (RFC 8445 §7.2.2, "<ours>:<theirs>"),
/// everything else (DTLS, SRTP, SRTCP) by the remote address that ICE validated for that
/// leg. A datagram from an address no leg validated is dropped and counted.
///
/// One `recvmmsg` reads the datagrams of many calls at once and the legs' sends queue in one
/// `sendmmsg` batch flushed at the end of the loop iteration (or once its oldest datagram
/// has waited ``maximumQueueingNanoseconds``), which a socket per leg, at 50 packets a
/// second each, never batches. Lives on one ``DatapathLoop``; every method runs on
/// that loop's thread.
public final class SharedUDPPort: ReadableHandler {
    public let loop: DatapathLoop
    public let socket: UDPSocket
    private let receiveBatch: ReceiveBatch
    private let sendBatch: SendBatch
    private var byAddress: [DatagramAddress: WebRTCLeg] = [:]
    private var byUsernameFragment: [String: WebRTCLeg] = [:]
    /// Datagrams no leg claimed (unknown source, unknown ufrag, truncated).
    public private(set) var unmatched = 0
    /// Datagrams the kernel refused to send (full buffer, or refused outright).
    public private(set) var sendDropped = 0

    /// Media datagrams stay under a path MTU; 2,048 bytes keeps any of them whole.
    public static let maximumDatagramSize = 2048

    /// Binds `address` and registers the socket with `loop` (call on the loop).
    public init(loop: DatapathLoop, address: DatagramAddress, batchSize: Int = 64) throws(SocketError) {
        self.loop = loop
        socket = try UDPSocket(binding: address, options: .init(receiveBufferSize: 4 << 20, sendBufferSize: 4 << 20))
        receiveBatch = ReceiveBatch(capacity: batchSize, maximumDatagramSize: Self.maximumDatagramSize)
        sendBatch = SendBatch(socket: socket, capacity: batchSize, maximumDatagramSize: Self.maximumDatagramSize)
        do {
            try loop.register(socket.fd, self)
        } catch {
            socket.close()
            throw error
        }
        loop.addIterationEndHook { [unowned self] in self.flush() }
    }

    /// The port every leg of this loop advertises.
    public var port: UInt16 { socket.localAddress.port }

    /// Legs served now.
    public var legCount: Int { byUsernameFragment.count }

    // MARK: legs

    func attach(_ leg: WebRTCLeg, usernameFragment: String) {
        byUsernameFragment[usernameFragment] = leg
    }

    /// The leg's local ufrag changed (ICE restart): checks with the old one no longer reach it.
    func rename(_ leg: WebRTCLeg, from old: String, to new: String) {
        if byUsernameFragment[old] === leg { byUsernameFragment[old] = nil }
        byUsernameFragment[new] = leg
    }

    /// ICE validated `address` for `leg`: its DTLS and SRTP now reach the leg.
    func bind(_ address: DatagramAddress, to leg: WebRTCLeg) {
        byAddress[address] = leg
    }

    func unbind(_ address: DatagramAddress, from leg: WebRTCLeg) {
        if byAddress[address] === leg { byAddress[address] = nil }
    }

    func detach(_ leg: WebRTCLeg, usernameFragment: String, addresses: [DatagramAddress]) {
        if byUsernameFragment[usernameFragment] === leg { byUsernameFragment[usernameFragment] = nil }
        for a in addresses { unbind(a, from: leg) }
    }

    // MARK: datagrams

    /// When the oldest datagram waiting in the send batch was queued (monotonic ns).
    private var oldestQueued: UInt64 = 0
    /// A queued datagram leaves at the latest this long after it was queued, even while
    /// the same wake-up still handles others (transcoding one costs ~0.1 ms, so a batch of
    /// them would otherwise hold the first answer back for the whole batch).
    public static let maximumQueueingNanoseconds: UInt64 = 100_000

    @inline(__always)
    func send(_ bytes: UnsafeRawBufferPointer, to destination: DatagramAddress) {
        if sendBatch.pending == 0 { oldestQueued = DatapathLoop.monotonicNanoseconds() }
        sendBatch.append(bytes, to: destination)
    }

    /// Sends the datagrams queued in this iteration (the loop calls it at the end of each).
    public func flush() {
        guard sendBatch.pending > 0 else { return }
        sendBatch.flush()
        sendDropped += sendBatch.takeTotals().dropped
    }

    public func readable() {
        receiveBatch.drain(socket, rounds: 16) { i in
            let datagram = receiveBatch.mutablePayload(i)
            if !receiveBatch.isTruncated(i), let source = receiveBatch.source(i), let leg = route(datagram, from: source) {
                leg.handle(datagram, from: source)
                if sendBatch.pending > 0, DatapathLoop.monotonicNanoseconds() - oldestQueued > Self.maximumQueueingNanoseconds { flush() }
            } else {
                unmatched += 1
            }
            return true
        }
    }

    /// The leg a datagram belongs to: a Binding request by the ufrag it names, anything else by its source.
    @inline(__always)
    private func route(_ datagram: UnsafeMutableRawBufferPointer, from source: DatagramAddress) -> WebRTCLeg? {
        if let first = datagram.first, STUNMessage.looksLikeSTUN(firstByte: first),
           let ufrag = Self.localUsernameFragment(UnsafeRawBufferPointer(datagram)), let leg = byUsernameFragment[ufrag] {
            return leg
        }
        return byAddress[source]
    }

    /// The part before ":" of a STUN message's USERNAME, read straight from the attribute
    /// list (RFC 8489 §5, §14.3) without decoding the message; nil when there is none.
    static func localUsernameFragment(_ message: UnsafeRawBufferPointer) -> String? {
        guard message.count >= 20 else { return nil }
        let length = Int(message[2]) << 8 | Int(message[3])
        guard length + 20 <= message.count else { return nil }
        var offset = 20
        let end = 20 + length
        while offset + 4 <= end {
            let type = Int(message[offset]) << 8 | Int(message[offset + 1])
            let valueLength = Int(message[offset + 2]) << 8 | Int(message[offset + 3])
            let value = offset + 4
            guard value + valueLength <= end else { return nil }
            if type == 0x0006 {
                // USERNAME is at most 513 bytes (RFC 8489 §14.3).
                guard valueLength <= 513 else { return nil }
                let bytes = UnsafeRawBufferPointer(rebasing: message[value..<(value + valueLength)])
                guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return nil }
                return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[bytes.startIndex..<colon]), as: UTF8.self)
            }
            offset = value + (valueLength + 3) & ~3
        }
        return nil
    }
}
