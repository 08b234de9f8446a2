import Crypto
import STUN

/// Stateless nonces bound to the client and with an expiry (RFC 8489 §9.2.4, RFC 8656 §7.2).
///
/// A nonce is `<expiry seconds, 8 hex digits><16 hex digits of HMAC-SHA256(server key,
/// expiry ‖ client transport address ‖ transport)>`: it can only be used from the 5-tuple
/// it was issued to, and after its expiry the server answers 438 (Stale Nonce).
public struct NonceIssuer: Sendable {
    private let key: SymmetricKey
    /// How long a nonce stays valid, in seconds.
    public var lifetime: Int

    public init(lifetime: Int, key: SymmetricKey = SymmetricKey(size: .bits256)) {
        self.lifetime = lifetime
        self.key = key
    }

    /// Why a nonce is not accepted.
    public enum Rejection: Error, Equatable, Sendable {
        case malformed
        case expired
        case wrongClient
    }

    /// A nonce for `client` valid for ``lifetime`` seconds from `now` (unix seconds).
    public func issue(for client: TransportAddress, transport: UInt8, now: Int) -> String {
        let expiry = UInt32(truncatingIfNeeded: now + lifetime)
        let hex = String(expiry, radix: 16)
        return String(repeating: "0", count: 8 - hex.count) + hex + mac(expiry: expiry, client: client, transport: transport)
    }

    /// Checks a nonce received from `client`.
    public func validate(_ nonce: String, from client: TransportAddress, transport: UInt8, now: Int) -> Result<Void, Rejection> {
        let utf8 = Array(nonce.utf8)
        guard utf8.count == 24, let expiry = UInt32(String(decoding: utf8[0..<8], as: UTF8.self), radix: 16) else { return .failure(.malformed) }
        let expected = Array(mac(expiry: expiry, client: client, transport: transport).utf8)
        guard constantTimeEqual(expected, Array(utf8[8...])) else { return .failure(.wrongClient) }
        guard Int(expiry) > now else { return .failure(.expired) }
        return .success(())
    }

    private func mac(expiry: UInt32, client: TransportAddress, transport: UInt8) -> String {
        var input: [UInt8] = [UInt8(expiry >> 24), UInt8(truncatingIfNeeded: expiry >> 16), UInt8(truncatingIfNeeded: expiry >> 8), UInt8(truncatingIfNeeded: expiry), transport]
        input += client.ip.bytes
        input += [UInt8(client.port >> 8), UInt8(client.port & 0xFF)]
        let code = HMAC<SHA256>.authenticationCode(for: input, using: key)
        return code.prefix(8).map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }
}
