import CDatapath

#if canImport(Glibc)
import Glibc
#endif

/// Fixed memory for a batch of datagrams: `count` slots of `slotSize` bytes, with their
/// `iovec`s, source/destination addresses and `mmsghdr`s, allocated once.
final class DatagramSlots {
    let count: Int
    let slotSize: Int
    let bytes: UnsafeMutableRawPointer
    let iovecs: UnsafeMutablePointer<iovec>
    let addresses: UnsafeMutablePointer<sockaddr_storage>
    let headers: UnsafeMutablePointer<tandem_mmsghdr>

    init(count: Int, slotSize: Int) {
        precondition(count > 0 && slotSize > 0)
        self.count = count
        self.slotSize = slotSize
        // Pages the kernel never writes stay unbacked, so large slots cost address space only.
        bytes = UnsafeMutableRawPointer.allocate(byteCount: count * slotSize, alignment: 64)
        iovecs = .allocate(capacity: count)
        addresses = .allocate(capacity: count)
        headers = .allocate(capacity: count)
        for i in 0..<count {
            iovecs[i] = iovec(iov_base: bytes + i * slotSize, iov_len: slotSize)
            headers[i] = tandem_mmsghdr()
            headers[i].msg_hdr.msg_iov = iovecs + i
            headers[i].msg_hdr.msg_iovlen = 1
            headers[i].msg_hdr.msg_name = UnsafeMutableRawPointer(addresses + i)
        }
    }

    deinit {
        bytes.deallocate()
        iovecs.deallocate()
        addresses.deallocate()
        headers.deallocate()
    }

    @inline(__always)
    func slot(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: bytes + i * slotSize, count: slotSize)
    }
}

/// Receives up to ``capacity`` datagrams with one `recvmmsg` (the many flows of a shared
/// socket arrive together; one system call reads them all).
public final class ReceiveBatch {
    let slots: DatagramSlots
    /// Ancillary data of each datagram (the kernel's receive timestamp), when asked for.
    private let control: UnsafeMutableRawPointer?
    private static let controlSize = 64
    /// Datagrams read by the last ``receive(from:)``.
    public private(set) var received = 0

    /// - Parameters:
    ///   - capacity: datagrams per system call.
    ///   - maximumDatagramSize: the largest datagram kept whole (65,536 keeps any UDP datagram).
    ///   - receiveTimestamps: keep each datagram's kernel arrival time (``arrivalNanoseconds(_:)``;
    ///     the socket needs `Options.receiveTimestamps`).
    public init(capacity: Int, maximumDatagramSize: Int = 65_536, receiveTimestamps: Bool = false) {
        slots = DatagramSlots(count: capacity, slotSize: maximumDatagramSize)
        control = receiveTimestamps ? UnsafeMutableRawPointer.allocate(byteCount: capacity * Self.controlSize, alignment: 16) : nil
    }

    deinit { control?.deallocate() }

    public var capacity: Int { slots.count }

    /// Reads what is waiting on `socket`, up to ``capacity`` datagrams; 0 when nothing is.
    @inline(__always)
    public func receive(from socket: UDPSocket) -> Int {
        for i in 0..<slots.count {
            slots.headers[i].msg_hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_storage>.size)
            slots.headers[i].msg_hdr.msg_flags = 0
            slots.iovecs[i].iov_len = slots.slotSize
            if let control {
                slots.headers[i].msg_hdr.msg_control = control + i * Self.controlSize
                slots.headers[i].msg_hdr.msg_controllen = Self.controlSize
            }
        }
        let n = tandem_recvmmsg(socket.fd, slots.headers, UInt32(slots.count), Int32(MSG_DONTWAIT))
        received = max(0, Int(n))
        return received
    }

    /// Reads `socket` batch after batch until a short batch shows it empty (level-triggered
    /// readiness) or `rounds` batches were read, so one busy socket cannot hold the loop;
    /// `body` gets each datagram's index and returns false to stop reading.
    @inline(__always)
    public func drain(_ socket: UDPSocket, rounds: Int, _ body: (Int) -> Bool) {
        for _ in 0..<rounds {
            let n = receive(from: socket)
            for i in 0..<n {
                guard body(i) else { return }
            }
            if n < capacity { return }
        }
    }

    /// The bytes of datagram `i` of the last receive.
    @inline(__always)
    public func payload(_ i: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: slots.bytes + i * slots.slotSize, count: Int(slots.headers[i].msg_len))
    }

    /// The bytes of datagram `i`, writable in place (SRTP decrypts where it was received).
    @inline(__always)
    public func mutablePayload(_ i: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: slots.bytes + i * slots.slotSize, count: Int(slots.headers[i].msg_len))
    }

    /// The source of datagram `i`; nil for an address family other than IPv4/IPv6.
    @inline(__always)
    public func source(_ i: Int) -> DatagramAddress? {
        DatagramAddress(UnsafeRawPointer(slots.addresses + i))
    }

    /// When the kernel received datagram `i` (CLOCK_REALTIME, ns; SO_TIMESTAMPNS), or nil
    /// when the batch or the socket keeps no timestamps.
    public func arrivalNanoseconds(_ i: Int) -> Int64? {
        guard control != nil else { return nil }
        let t = tandem_receive_timestamp_ns(&slots.headers[i].msg_hdr)
        return t >= 0 ? t : nil
    }

    /// Whether datagram `i` was larger than the slot (and so cut short).
    @inline(__always)
    public func isTruncated(_ i: Int) -> Bool {
        slots.headers[i].msg_hdr.msg_flags & Int32(MSG_TRUNC) != 0
    }
}

/// Collects datagrams for one socket and sends them with one `sendmmsg` on ``flush()``:
/// a caller writes straight into the next slot (``nextSlot()``) and commits it, so a
/// datagram received elsewhere can be framed in place without a copy.
public final class SendBatch {
    let slots: DatagramSlots
    public let socket: UDPSocket
    /// Committed datagrams waiting for ``flush()``.
    public private(set) var pending = 0

    public init(socket: UDPSocket, capacity: Int, maximumDatagramSize: Int = 65_540) {
        self.socket = socket
        slots = DatagramSlots(count: capacity, slotSize: maximumDatagramSize)
    }

    /// Datagrams ``flush()`` handed over, and those dropped or refused by the kernel,
    /// since ``takeTotals()``.
    public private(set) var sent = 0
    public private(set) var dropped = 0

    /// Returns the counts and starts them again from zero.
    public func takeTotals() -> (sent: Int, dropped: Int) {
        defer { sent = 0; dropped = 0 }
        return (sent, dropped)
    }

    /// The whole buffer of the next free slot (flushing first when every slot is taken).
    /// Write a datagram into it, then ``commit(length:to:)``; an uncommitted slot is reused.
    @inline(__always)
    public func nextSlot() -> UnsafeMutableRawBufferPointer {
        if pending == slots.count { flush() }
        return slots.slot(pending)
    }

    /// Queues the first `length` bytes of the slot last returned by ``nextSlot()``.
    @inline(__always)
    public func commit(length: Int, to destination: DatagramAddress) {
        let i = pending
        slots.iovecs[i].iov_len = length
        slots.headers[i].msg_hdr.msg_namelen = destination.write(to: slots.addresses + i)
        pending += 1
    }

    /// Queues a copy of `bytes` (dropped when larger than a slot).
    public func append(_ bytes: UnsafeRawBufferPointer, to destination: DatagramAddress) {
        let slot = nextSlot()
        guard bytes.count <= slot.count else { dropped += 1; return }
        if let base = bytes.baseAddress { slot.baseAddress!.copyMemory(from: base, byteCount: bytes.count) }
        commit(length: bytes.count, to: destination)
    }

    public func append(_ bytes: [UInt8], to destination: DatagramAddress) {
        bytes.withUnsafeBytes { append($0, to: destination) }
    }

    /// Sends everything queued. Datagrams the kernel will not take (a full socket buffer,
    /// or a refusal such as EMSGSIZE) are skipped and counted in ``dropped``, so one bad
    /// datagram never holds back the rest.
    public func flush() {
        var start = 0
        while start < pending {
            let n = tandem_sendmmsg(socket.fd, slots.headers + start, UInt32(pending - start), Int32(MSG_DONTWAIT | MSG_NOSIGNAL))
            if n > 0 {
                sent += Int(n)
                start += Int(n)
            } else {
                if errno == EINTR { continue }
                dropped += 1  // the datagram at `start` failed: skip it
                start += 1
            }
        }
        pending = 0
    }
}
