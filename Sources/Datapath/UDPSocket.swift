import CDatapath
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why a socket could not be set up: the failing call and its `errno`.
public struct SocketError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public init(_ call: String, errno: Int32 = Glibc.errno) {
        self.call = call
        self.errno = errno
    }

    /// The port (or address) is taken.
    public var isAddressInUse: Bool { errno == EADDRINUSE }

    public var description: String { "\(call): \(String(cString: strerror(errno)))" }
}

/// What became of one datagram handed to the kernel.
public enum SendOutcome: Sendable {
    case sent
    /// The socket buffer was full (EAGAIN/ENOBUFS): UDP drops it, as a router would.
    case dropped
    /// The kernel refused it (too large, unreachable family): with the `errno`.
    case failed(Int32)

    public var isSent: Bool { if case .sent = self { true } else { false } }
}

/// A non-blocking UDP socket on a raw descriptor, bound at creation. Reads and writes go
/// straight to `recvfrom`/`sendto` (or the batch calls of ``ReceiveBatch`` and
/// ``SendBatch``), with addresses as ``DatagramAddress``. The descriptor closes on
/// ``close()`` or when the last reference goes.
public final class UDPSocket: Sendable {
    public let fd: Int32
    /// The address the socket is bound to (with the port the kernel picked for port 0).
    public let localAddress: DatagramAddress
    private let closed = Atomic<Bool>(false)

    /// Options applied before `bind`.
    public struct Options: Sendable {
        /// SO_REUSEPORT: several sockets (one per event loop) share the port, the kernel
        /// spreads flows over them.
        public var reusePort = false
        public var receiveBufferSize: Int?
        public var sendBufferSize: Int?
        /// IPv4 only: IP_PMTUDISC_DO, so datagrams leave with DF set (RFC 8656 §14.8 DONT-FRAGMENT).
        public var dontFragment = false
        /// SO_TIMESTAMPNS: the kernel stamps each datagram with its arrival time (read it
        /// through a ``ReceiveBatch`` made with `receiveTimestamps`).
        public var receiveTimestamps = false

        public init(reusePort: Bool = false, receiveBufferSize: Int? = nil, sendBufferSize: Int? = nil, dontFragment: Bool = false, receiveTimestamps: Bool = false) {
            self.reusePort = reusePort
            self.receiveBufferSize = receiveBufferSize
            self.sendBufferSize = sendBufferSize
            self.dontFragment = dontFragment
            self.receiveTimestamps = receiveTimestamps
        }
    }

    /// Creates a socket bound to `address` (port 0: any free port). IPv6 sockets are
    /// IPv6-only, so an IPv4 listener can share the port number.
    public init(binding address: DatagramAddress, options: Options = Options()) throws(SocketError) {
        let family = address.isIPv6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        func set(_ level: Int32, _ name: Int32, _ value: Int32) throws(SocketError) {
            var v = value
            guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                let error = SocketError("setsockopt")
                Glibc.close(fd)
                throw error
            }
        }
        if options.reusePort {
            try set(SOL_SOCKET, SO_REUSEADDR, 1)
            try set(SOL_SOCKET, SO_REUSEPORT, 1)
        }
        if let size = options.receiveBufferSize { try set(SOL_SOCKET, SO_RCVBUF, Int32(clamping: size)) }
        if let size = options.sendBufferSize { try set(SOL_SOCKET, SO_SNDBUF, Int32(clamping: size)) }
        if options.receiveTimestamps { try set(SOL_SOCKET, SO_TIMESTAMPNS, 1) }
        if address.isIPv6 { try set(Int32(IPPROTO_IPV6), IPV6_V6ONLY, 1) }
        if options.dontFragment, !address.isIPv6 { try set(Int32(IPPROTO_IP), IP_MTU_DISCOVER, IP_PMTUDISC_DO) }
        let bound = address.withSockaddr { Glibc.bind(fd, $0, $1) }
        guard bound == 0 else {
            let error = SocketError("bind \(address)")
            Glibc.close(fd)
            throw error
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0, let local = withUnsafePointer(to: &storage, { DatagramAddress(UnsafeRawPointer($0)) }) else {
            let error = SocketError("getsockname")
            Glibc.close(fd)
            throw error
        }
        self.fd = fd
        self.localAddress = local
    }

    deinit { close() }

    /// Closes the descriptor (once; later calls do nothing).
    public func close() {
        if closed.exchange(true, ordering: .acquiringAndReleasing) { return }
        Glibc.close(fd)
    }

    public var isClosed: Bool { closed.load(ordering: .relaxed) }

    /// Receives one datagram into `buffer`: its length and source, or nil when none is
    /// waiting. `truncated` is set when the datagram did not fit.
    @inline(__always)
    public func receive(into buffer: UnsafeMutableRawBufferPointer) -> (length: Int, source: DatagramAddress, truncated: Bool)? {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let n = withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT | MSG_TRUNC), $0, &length)
            }
        }
        guard n >= 0, let source = withUnsafePointer(to: &storage, { DatagramAddress(UnsafeRawPointer($0)) }) else { return nil }
        return (min(n, buffer.count), source, n > buffer.count)
    }

    /// Waits up to `milliseconds` for a datagram (for tools and tests; a loop never blocks):
    /// its bytes and source, or nil when none came.
    public func receive(waitingMilliseconds milliseconds: Int32) -> (bytes: [UInt8], source: DatagramAddress)? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, milliseconds) > 0 else { return nil }
        var bytes = [UInt8](repeating: 0, count: 65_536)
        guard let got = bytes.withUnsafeMutableBytes({ receive(into: $0) }) else { return nil }
        bytes.removeSubrange(got.length...)
        return (bytes, got.source)
    }

    /// Sends one datagram.
    @inline(__always)
    public func send(_ bytes: UnsafeRawBufferPointer, to destination: DatagramAddress) -> SendOutcome {
        let n = destination.withSockaddr { sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), $0, $1) }
        if n >= 0 { return .sent }
        let e = errno
        return e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS ? .dropped : .failed(e)
    }

    /// Sends one datagram from an array.
    public func send(_ bytes: [UInt8], to destination: DatagramAddress) -> SendOutcome {
        bytes.withUnsafeBytes { send($0, to: destination) }
    }
}
