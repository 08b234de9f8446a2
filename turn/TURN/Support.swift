import Datapath
import NIOCore
import STUN

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TransportAddress {
    /// The IP and port of a socket address; nil for Unix-domain addresses.
    @inline(__always)
    public init?(_ address: SocketAddress) {
        switch address {
        case .v4(let a):
            let ip = UInt32(bigEndian: a.address.sin_addr.s_addr)
            self.init(ip: .v4(ip), port: UInt16(bigEndian: a.address.sin_port))
        case .v6(let a):
            var storage = a.address.sin6_addr
            let (hi, lo) = withUnsafeBytes(of: &storage) { raw -> (UInt64, UInt64) in
                (UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                 UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
            }
            self.init(ip: .v6(hi, lo), port: UInt16(bigEndian: a.address.sin6_port))
        default:
            return nil
        }
    }

    /// The socket address for this IP and port.
    public func socketAddress() throws -> SocketAddress {
        try ip.socketAddress(port: Int(port))
    }
}

extension IPAddress {
    /// The IP address of an IPv4 or IPv6 socket address; nil for Unix domain sockets.
    public init?(_ address: SocketAddress) {
        guard let t = TransportAddress(address) else { return nil }
        self = t.ip
    }

    /// The socket address for this IP and `port`.
    public func socketAddress(port: Int) throws -> SocketAddress {
        try SocketAddress(packedIPAddress: ByteBuffer(bytes: bytes), port: port)
    }
}

extension CIDR {
    /// Whether the IP of `address` lies inside this prefix (false for Unix domain sockets).
    public func contains(_ address: SocketAddress) -> Bool {
        IPAddress(address).map(contains) ?? false
    }
}

/// A token bucket: `rate` tokens per second, holding at most `burst`.
public struct TokenBucket: Sendable {
    public var rate: Double
    public var burst: Double
    private var tokens: Double
    private var last: Int64

    public init(rate: Double, burst: Double, now: Int64) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = now
    }

    /// Takes `cost` tokens if available at `now` (milliseconds).
    public mutating func take(_ cost: Double = 1, now: Int64) -> Bool {
        if now > last {
            tokens = min(burst, tokens + Double(now - last) * rate / 1000)
            last = now
        }
        guard tokens >= cost else { return false }
        tokens -= cost
        return true
    }

    /// Whether the bucket has been full long enough to be forgotten.
    public func isIdle(at now: Int64) -> Bool {
        tokens + Double(now - last) * rate / 1000 >= burst
    }
}

/// Per-source-IP request rate limits (RFC 8656 §21.1.5 "bounded rates"), bounded in size:
/// when `capacity` sources are tracked, new sources are refused until idle ones are swept.
public struct RateLimiter: Sendable {
    public var perSecond: Double
    public var capacity: Int
    private var buckets: [IPAddress: TokenBucket] = [:]

    public init(perSecond: Int, capacity: Int = 65_536) {
        self.perSecond = Double(perSecond)
        self.capacity = capacity
    }

    /// Whether one more request from `ip` is within its rate.
    public mutating func allow(_ ip: IPAddress, now: Int64) -> Bool {
        if perSecond <= 0 { return true }
        if buckets[ip] == nil {
            guard buckets.count < capacity else { return false }
            buckets[ip] = TokenBucket(rate: perSecond, burst: perSecond * 2, now: now)
        }
        return buckets[ip]!.take(now: now)
    }

    /// Forgets sources whose buckets have refilled.
    public mutating func sweep(now: Int64) {
        buckets = buckets.filter { !$0.value.isIdle(at: now) }
    }

    public var trackedSources: Int { buckets.count }
}
