import NIOSSL
import STUN

/// A client transport of the TURN server (RFC 8656 §3.1): UDP, TCP, or TLS over TCP.
public enum ClientTransport: String, Sendable, Hashable, CaseIterable {
    case udp, tcp, tls

    /// The IP protocol number used in nonces and logs (TLS counts as TCP plus a marker).
    var code: UInt8 {
        switch self {
        case .udp: 17
        case .tcp: 6
        case .tls: 56
        }
    }
}

/// Everything the TURN server needs to run; static settings and the runtime ones the
/// database holds (relay and external addresses) are merged by the caller.
public struct TURNServerConfiguration: Sendable {
    /// REALM for long-term credentials (RFC 8489 §9.2).
    public var realm = "tandem"
    /// SOFTWARE sent in responses.
    public var software = "Tandem"
    /// Local addresses the client listeners bind to.
    public var listenAddresses: [String] = ["0.0.0.0"]
    /// Port for UDP and TCP clients (3478) and for TLS clients (5349).
    public var port = 3478
    public var tlsPort = 5349
    public var transports: Set<ClientTransport> = [.udp, .tcp, .tls]
    /// Server TLS configuration for 5349; TLS is skipped when nil.
    public var tls: TLSConfiguration?
    /// Addresses relayed transport addresses are allocated on (one per family is used).
    public var relayAddresses: [IPAddress] = []
    /// Relay address → the address advertised in XOR-RELAYED-ADDRESS (1:1 NAT).
    public var externalAddresses: [IPAddress: IPAddress] = [:]
    /// Port range for relayed transport addresses (RFC 8656 §7.2: 49152–65535).
    public var relayPorts: ClosedRange<Int> = 49152...65535
    /// Peers allowed despite the built-in refusals, and extra refused prefixes.
    public var allowedPeers: [CIDR] = []
    public var deniedPeers: [CIDR] = []
    public var lifetimes = LifetimePolicy()
    /// Seconds a nonce stays valid before 438 (Stale Nonce).
    public var nonceLifetime = 600
    /// Allocations per REST-API user (the part after `:` in the username, or the whole
    /// username) and on the whole server; beyond them 486 (Allocation Quota Reached).
    public var userQuota = 100
    public var totalQuota = 10_000
    /// STUN requests per second accepted from one source IP (token bucket, burst 2×).
    public var maxRequestsPerSecond = 500
    /// Relayed bits per second per allocation, both directions together; 0 = unlimited.
    public var maxBitsPerSecond = 0
    /// Seconds a TCP/TLS connection may stay open without an allocation; 0 = no limit.
    public var streamIdleTimeout = 30
    /// Datapath loops (threads); 0 = one per core.
    public var threads = 0
    /// Receive moderation: under load, each loop wakes at most once per this many
    /// microseconds, so that a wake-up serves more datagrams (see `DatapathLoop`); 0 = off.
    public var batchWindowMicroseconds = 500
    /// Datagrams read per system call on the UDP client listeners (recvmmsg).
    public var vectorReadCount = 32

    public init() {}

    /// The policy for peers, with the server's own listening ports refused.
    func peerPolicy() -> PeerPolicy {
        var own: [TransportAddress] = []
        for a in listenAddresses {
            guard let ip = IPAddress(a) else { continue }
            own.append(TransportAddress(ip: ip, port: UInt16(port)))
            own.append(TransportAddress(ip: ip, port: UInt16(tlsPort)))
        }
        return PeerPolicy(allowed: allowedPeers, denied: deniedPeers, ownListeners: own)
    }
}
