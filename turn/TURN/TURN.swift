/// # TURN
///
/// A TURN server (RFC 8656, which obsoletes RFC 5766, with RFC 6156 IPv6 allocations):
/// Allocate, Refresh, CreatePermission, ChannelBind, Send/Data indications and ChannelData,
/// with clients over UDP, TCP and TLS (stream framing per RFC 8656 §12.5) and UDP relays.
/// Authentication is the long-term credential mechanism (RFC 8489 §9.2) with the
/// "TURN REST API" password convention (``RESTCredential``).
///
/// Layout: the protocol decisions live in value types with an explicit clock
/// (``AllocationState``, ``NonceIssuer``, ``PeerPolicy``, ``RateLimiter``) and in the
/// per-event-loop ``TURNLoopCore``; ``TURNServer`` owns the sockets (SwiftNIO) and
/// runs as a swift-service-lifecycle `Service`. Every socket of an allocation lives on the
/// event loop of its client's 5-tuple, so the relay path takes no locks and hops no threads.
///
/// It does not do TCP relays (RFC 6062), DTLS client transport, or OAuth (RFC 7635).
/// Knows nothing of SIP or WebRTC; the `Tandem` executable wires it up.
public enum TURN {
    /// IP protocol number for UDP in REQUESTED-TRANSPORT (RFC 8656 §18.7).
    public static let udpProtocol: UInt8 = 17
}
