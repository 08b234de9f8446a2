import CDatapath

#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address and UDP port, kept as plain integers so that the datapath
/// never formats addresses as text: hashing and comparing it is a few word operations.
public struct DatagramAddress: Hashable, Sendable, CustomStringConvertible {
    /// Whether the address is IPv6.
    public let isIPv6: Bool
    /// IPv6: the 16 address bytes as two big-endian halves. IPv4: `low` holds the
    /// address in its low 32 bits (`0x7F000001` is 127.0.0.1), `high` is 0.
    public let high: UInt64
    public let low: UInt64
    public let port: UInt16

    public init(ipv4: UInt32, port: UInt16) {
        self.isIPv6 = false
        self.high = 0
        self.low = UInt64(ipv4)
        self.port = port
    }

    public init(ipv6High: UInt64, low: UInt64, port: UInt16) {
        self.isIPv6 = true
        self.high = ipv6High
        self.low = low
        self.port = port
    }

    /// The IPv4 address, nil for IPv6.
    @inline(__always)
    public var ipv4: UInt32? { isIPv6 ? nil : UInt32(truncatingIfNeeded: low) }

    /// Reads a `sockaddr_in` or `sockaddr_in6`; nil for other families.
    @inline(__always)
    public init?(_ sockaddr: UnsafeRawPointer) {
        let family = sockaddr.loadUnaligned(as: sa_family_t.self)
        switch Int32(family) {
        case AF_INET:
            let a = sockaddr.loadUnaligned(as: sockaddr_in.self)
            self.init(ipv4: UInt32(bigEndian: a.sin_addr.s_addr), port: UInt16(bigEndian: a.sin_port))
        case AF_INET6:
            let port = UInt16(bigEndian: sockaddr.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
            let high = UInt64(bigEndian: sockaddr.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            let low = UInt64(bigEndian: sockaddr.loadUnaligned(fromByteOffset: 16, as: UInt64.self))
            self.init(ipv6High: high, low: low, port: port)
        default:
            return nil
        }
    }

    /// Writes this address as a `sockaddr_in`/`sockaddr_in6` into `storage` and returns its length.
    @inline(__always)
    public func write(to storage: UnsafeMutablePointer<sockaddr_storage>) -> socklen_t {
        let raw = UnsafeMutableRawPointer(storage)
        if isIPv6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &a.sin6_addr) { bytes in
                bytes.storeBytes(of: high.bigEndian, toByteOffset: 0, as: UInt64.self)
                bytes.storeBytes(of: low.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
            raw.storeBytes(of: a, as: sockaddr_in6.self)
            return socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            a.sin_addr.s_addr = UInt32(truncatingIfNeeded: low).bigEndian
            raw.storeBytes(of: a, as: sockaddr_in.self)
            return socklen_t(MemoryLayout<sockaddr_in>.size)
        }
    }

    /// Calls `body` with this address as a `sockaddr` pointer and its length.
    @inline(__always)
    public func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> R) rethrows -> R {
        var storage = sockaddr_storage()
        let length = write(to: &storage)
        return try withUnsafePointer(to: &storage) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }

    /// `a.b.c.d:port` or `[v6]:port`, for logs (off the hot path).
    public var description: String {
        if let v4 = ipv4 {
            return "\(v4 >> 24).\((v4 >> 16) & 0xFF).\((v4 >> 8) & 0xFF).\(v4 & 0xFF):\(port)"
        }
        var groups: [String] = []
        for half in [high, low] {
            for i in stride(from: 48, through: 0, by: -16) { groups.append(String((half >> UInt64(i)) & 0xFFFF, radix: 16)) }
        }
        return "[\(groups.joined(separator: ":"))]:\(port)"
    }
}
