import CDTLS

/// Why DTLS failed.
public struct DTLSError: Error, Sendable, Equatable, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { "DTLS: " + reason }
}

/// This gateway's DTLS identity (RFC 8827 §6.5, RFC 8842): an ECDSA P-256 key and a
/// self-signed certificate generated at start, whose SHA-256 fingerprint goes into every
/// SDP `a=fingerprint`. Holds the OpenSSL context all DTLS endpoints share (safe across threads).
public final class DTLSIdentity: @unchecked Sendable {
    let handle: OpaquePointer
    /// SHA-256 of the certificate (RFC 8122 §5).
    public let fingerprintSHA256: [UInt8]
    public let profiles: [SRTPProfile]

    /// - Parameter profiles: offered (client) or accepted (server) in this order of preference.
    public init(commonName: String = "tandem", validityDays: Int = 30, profiles: [SRTPProfile] = [.aeadAES128GCM, .aes128CMHMACSHA1_80]) throws(DTLSError) {
        var error = [CChar](repeating: 0, count: 256)
        let names = profiles.map(\.openSSLName).joined(separator: ":")
        guard let handle = tandem_dtls_identity_generate(commonName, Int32(validityDays), names, &error, error.count) else {
            throw DTLSError(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        var fingerprint = [UInt8](repeating: 0, count: 32)
        guard tandem_dtls_identity_fingerprint_sha256(handle, &fingerprint) == 0 else {
            tandem_dtls_identity_free(handle)
            throw DTLSError("certificate fingerprint")
        }
        self.handle = handle
        self.fingerprintSHA256 = fingerprint
        self.profiles = profiles
    }

    deinit { tandem_dtls_identity_free(handle) }
}

/// One DTLS 1.2 association over a leg's datagrams (RFC 6347) with the use_srtp
/// extension (RFC 5764): drives the handshake from datagrams handed in, queues the
/// datagrams to send, runs the retransmission timer, checks the peer's certificate
/// against the fingerprint from its SDP, and exports the SRTP keys. No sockets here:
/// the leg feeds it and sends what it returns. Confined to the leg's loop.
public final class DTLSTransport {
    /// Who sends the ClientHello (RFC 8842 §5: `a=setup:active` is the client).
    public enum Role: Sendable { case client, server }

    public enum State: Sendable, Equatable {
        case handshaking
        case connected(SRTPKeys)
        case failed(DTLSError)
        case closed
    }

    public let role: Role
    public private(set) var state: State = .handshaking
    /// SHA-256 fingerprints the peer's certificate may have (from its SDP).
    public var expectedFingerprints: [[UInt8]]
    private let handle: OpaquePointer
    private let identity: DTLSIdentity
    private var scratch = [UInt8](repeating: 0, count: 2048)

    public init(identity: DTLSIdentity, role: Role, expectedFingerprints: [[UInt8]], mtu: Int = 1200) throws(DTLSError) {
        guard let handle = tandem_dtls_new(identity.handle, role == .server ? 1 : 0, Int32(mtu)) else { throw DTLSError("cannot create an endpoint") }
        self.handle = handle
        self.identity = identity
        self.role = role
        self.expectedFingerprints = expectedFingerprints
    }

    deinit { tandem_dtls_free(handle) }

    /// Starts the handshake: a client queues its ClientHello; a server waits.
    public func start() {
        if role == .client { advance() }
    }

    /// A datagram from the peer (first byte 20–63, RFC 7983). Returns application data, if any.
    @discardableResult
    public func receive(_ datagram: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let base = datagram.baseAddress else { return nil }
        switch state {
        case .failed, .closed: return nil
        case .handshaking, .connected: break
        }
        guard tandem_dtls_feed(handle, base.assumingMemoryBound(to: UInt8.self), datagram.count) == 0 else { return nil }
        if case .handshaking = state {
            advance()
            // The peer may have sent application data right behind its Finished.
            if case .connected = state { return read() }
            return nil
        }
        return read()
    }

    public func receive(_ datagram: [UInt8]) -> [UInt8]? { datagram.withUnsafeBytes { receive($0) } }

    /// Datagrams to send, in order (each at most the MTU).
    public func takeOutgoing() -> [[UInt8]] {
        var out: [[UInt8]] = []
        while true {
            let n = scratch.withUnsafeMutableBufferPointer { tandem_dtls_next_datagram(handle, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(Array(scratch[0..<Int(n)]))
        }
        return out
    }

    /// Milliseconds until ``handleTimeout()`` should run, or nil when no timer runs.
    public var timeoutMilliseconds: Int? {
        guard case .handshaking = state else { return nil }
        let t = tandem_dtls_timeout_ms(handle)
        return t < 0 ? nil : Int(t)
    }

    /// The retransmission timer fired (RFC 6347 §4.2.4): resend the last flight.
    public func handleTimeout() {
        guard case .handshaking = state else { return }
        if tandem_dtls_handle_timeout(handle) != 0 { fail("handshake timed out") }
    }

    /// Sends close_notify (queued) and ends the association.
    public func close() {
        if case .connected = state { tandem_dtls_shutdown(handle) }
        if case .failed = state { return }
        state = .closed
    }

    private func advance() {
        switch tandem_dtls_handshake(handle) {
        case 1: finishHandshake()
        case 0: break
        default: fail(lastError(or: "handshake failed"))
        }
    }

    private func finishHandshake() {
        var peer = [UInt8](repeating: 0, count: 32)
        guard tandem_dtls_peer_fingerprint_sha256(handle, &peer) == 0 else { return fail("peer sent no certificate") }
        guard expectedFingerprints.contains(peer) else { return fail("peer certificate does not match the SDP fingerprint") }
        guard let profile = SRTPProfile(rawValue: Int(tandem_dtls_srtp_profile(handle))) else { return fail("no SRTP profile negotiated") }
        var material = [UInt8](repeating: 0, count: SRTPKeys.materialLength(profile))
        guard tandem_dtls_export_srtp_keying_material(handle, &material, material.count) == 0 else { return fail("keying material export failed") }
        state = .connected(SRTPKeys(profile: profile, keyingMaterial: material, isDTLSServer: role == .server))
    }

    private func read() -> [UInt8]? {
        let n = scratch.withUnsafeMutableBufferPointer { tandem_dtls_read(handle, $0.baseAddress, $0.count) }
        if n > 0 { return Array(scratch[0..<Int(n)]) }
        if n < 0 {
            if tandem_dtls_peer_closed(handle) != 0 { state = .closed } else { fail(lastError(or: "read failed")) }
        }
        return nil
    }

    private func fail(_ reason: String) {
        state = .failed(DTLSError(reason))
    }

    private func lastError(or fallback: String) -> String {
        var text = [CChar](repeating: 0, count: 256)
        tandem_dtls_last_error(handle, &text, text.count)
        let s = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return s.isEmpty ? fallback : s
    }
}
