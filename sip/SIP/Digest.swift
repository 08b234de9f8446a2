import Crypto

/// The hash of a Digest challenge (RFC 7616 §3.2; for SIP RFC 8760 §2.2): MD5, SHA-256 and
/// SHA-512-256, each also as a `-sess` variant.
public enum DigestAlgorithm: String, Sendable, CaseIterable {
    case md5 = "MD5"
    case md5Session = "MD5-sess"
    case sha256 = "SHA-256"
    case sha256Session = "SHA-256-sess"
    case sha512_256 = "SHA-512-256"
    case sha512_256Session = "SHA-512-256-sess"

    /// Algorithm names compare case-insensitively; an absent one means MD5 (RFC 7616 §3.3).
    public init?(name: String?) {
        guard let name else { self = .md5; return }
        guard let match = Self.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
        self = match
    }

    var isSession: Bool { rawValue.hasSuffix("-sess") }

    /// Lowercase hex of the hash of `text`.
    func hash(_ text: String) -> String {
        let bytes = Array(text.utf8)
        switch self {
        case .md5, .md5Session: return Self.hex(Insecure.MD5.hash(data: bytes))
        case .sha256, .sha256Session: return Self.hex(SHA256.hash(data: bytes))
        case .sha512_256, .sha512_256Session: return Self.hex(SHA512_256.hash(bytes))
        }
    }

    static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in digest { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0x0F)]) }
        return String(decoding: out, as: UTF8.self)
    }
}

/// A `WWW-Authenticate` or `Proxy-Authenticate` Digest challenge (RFC 7616 §3.3, RFC 3261 §22).
public struct DigestChallenge: Hashable, Sendable {
    public var realm: String
    public var nonce: String
    public var opaque: String?
    /// The algorithm name as sent (nil: MD5).
    public var algorithmName: String?
    /// The qop options offered; empty for the RFC 2069 form without qop.
    public var qopOptions: [String]
    /// The previous nonce was only too old: retry with this one (not a failed password).
    public var stale: Bool

    public var algorithm: DigestAlgorithm? { DigestAlgorithm(name: algorithmName) }

    /// Parses `Digest realm="…", nonce="…", …`; nil for another scheme or without realm and nonce.
    public init?(parsing value: String) {
        guard let (scheme, params) = Self.authParameters(value), scheme == "digest" else { return nil }
        guard let realm = params["realm"], let nonce = params["nonce"] else { return nil }
        self.realm = realm
        self.nonce = nonce
        opaque = params["opaque"]
        algorithmName = params["algorithm"]
        qopOptions = (params["qop"] ?? "").split(separator: ",").map { $0.trimmingWhitespace().lowercased() }.filter { !$0.isEmpty }
        stale = params["stale"]?.lowercased() == "true"
    }

    /// The scheme (lowercased) and the auth-params of a challenge or credentials value
    /// (RFC 3261 §25.1 `challenge` / `credentials`): names lowercased, values unquoted, the
    /// first of a repeated name kept. Nil without a scheme followed by whitespace.
    public static func authParameters(_ value: String) -> (scheme: String, parameters: [String: String])? {
        let trimmed = value.trimmingWhitespace()
        guard let space = trimmed.firstIndex(where: { $0 == " " || $0 == "\t" }) else { return nil }
        var params: [String: String] = [:]
        for item in HeaderValue.split(String(trimmed[space...]), at: UInt8(ascii: ",")) {
            let parts = item.split(separator: "=", maxSplits: 1)
            guard parts.count == 2 else { continue }
            let name = parts[0].trimmingWhitespace().lowercased()
            if params[name] == nil { params[name] = HeaderValue.unquoted(parts[1].trimmingWhitespace()) }
        }
        return (trimmed[..<space].lowercased(), params)
    }
}

/// Answers Digest challenges for one set of credentials (RFC 7616 §3.4, RFC 8760): picks
/// the topmost challenge with an algorithm it supports, counts the uses of each nonce
/// (`nc`), and writes the `Authorization` / `Proxy-Authorization` value. `qop=auth` is used
/// when offered; `auth-int` alone is refused (the body's hash would bind the credentials
/// to one body, and platforms do not ask for it).
public struct DigestClient: Sendable {
    public var username: String
    public var password: String
    /// Uses of each nonce so far.
    private var nonceCounts: [String: UInt32] = [:]

    public init(username: String, password: String) {
        self.username = username
        self.password = password
    }

    /// The challenge to answer among several (the topmost one this client supports).
    public static func choose(_ challenges: [DigestChallenge]) -> DigestChallenge? {
        challenges.first { $0.algorithm != nil && ($0.qopOptions.isEmpty || $0.qopOptions.contains("auth")) }
    }

    /// The credentials for `method` on `uri` under `challenge`; `cnonce` is the client nonce
    /// (random per request; fixed only in tests). Nil when the challenge cannot be answered.
    public mutating func authorization(for challenge: DigestChallenge, method: SIPMethod, uri: String, cnonce: String) -> String? {
        guard let algorithm = challenge.algorithm, challenge.qopOptions.isEmpty || challenge.qopOptions.contains("auth") else { return nil }
        let useQop = !challenge.qopOptions.isEmpty
        var ha1 = algorithm.hash("\(username):\(challenge.realm):\(password)")
        if algorithm.isSession { ha1 = algorithm.hash("\(ha1):\(challenge.nonce):\(cnonce)") }
        let ha2 = algorithm.hash("\(method.name):\(uri)")
        let count = (nonceCounts[challenge.nonce] ?? 0) &+ 1
        nonceCounts[challenge.nonce] = count
        let nc = String(repeating: "0", count: 8 - String(count, radix: 16).count) + String(count, radix: 16)
        let response = useQop
            ? algorithm.hash("\(ha1):\(challenge.nonce):\(nc):\(cnonce):auth:\(ha2)")
            : algorithm.hash("\(ha1):\(challenge.nonce):\(ha2)")
        var fields = [
            "username=\(Self.quoted(username))", "realm=\(Self.quoted(challenge.realm))", "nonce=\(Self.quoted(challenge.nonce))",
            "uri=\(Self.quoted(uri))", "response=\"\(response)\"", "algorithm=\(challenge.algorithmName ?? algorithm.rawValue)",
        ]
        if useQop { fields += ["cnonce=\(Self.quoted(cnonce))", "qop=auth", "nc=\(nc)"] }
        if let opaque = challenge.opaque { fields.append("opaque=\(Self.quoted(opaque))") }
        return "Digest " + fields.joined(separator: ", ")
    }

    /// Forgets the nonce counts (a new registration).
    public mutating func reset() { nonceCounts.removeAll() }

    static func quoted(_ text: String) -> String {
        "\"" + text.replacingBackslashesAndQuotes() + "\""
    }
}

extension String {
    fileprivate func replacingBackslashesAndQuotes() -> String {
        var out = ""
        for c in self {
            if c == "\\" || c == "\"" { out.append("\\") }
            out.append(c)
        }
        return out
    }
}

/// SHA-512/256 (FIPS 180-4 §5.3.6.2, §6.7): SHA-512 with its own initial value, cut to 256
/// bits. swift-crypto has no such hash and SIP digest needs it (RFC 8760).
enum SHA512_256 {
    static let initial: [UInt64] = [
        0x2231_2194_FC2B_F72C, 0x9F55_5FA3_C84C_64C2, 0x2393_B86B_6F53_B151, 0x9638_7719_5940_EABD,
        0x9628_3EE2_A88E_FFE3, 0xBE5E_1E25_5386_3992, 0x2B01_99FC_2C85_B8AA, 0x0EB7_2DDC_81C5_2CA2,
    ]

    static let k: [UInt64] = [
        0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc, 0x3956c25bf348b538, 0x59f111f1b605d019,
        0x923f82a4af194f9b, 0xab1c5ed5da6d8118, 0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
        0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694, 0xe49b69c19ef14ad2, 0xefbe4786384f25e3,
        0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65, 0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
        0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4, 0xc6e00bf33da88fc2, 0xd5a79147930aa725,
        0x06ca6351e003826f, 0x142929670a0e6e70, 0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
        0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b, 0xa2bfe8a14cf10364, 0xa81a664bbc423001,
        0xc24b8b70d0f89791, 0xc76c51a30654be30, 0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
        0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8, 0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb,
        0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3, 0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
        0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b, 0xca273eceea26619c, 0xd186b8c721c0c207,
        0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178, 0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
        0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c, 0x4cc5d4becb3e42b6, 0x597f299cfc657e2a,
        0x5fcb6fab3ad6faec, 0x6c44198c4a475817,
    ]

    static func hash(_ message: [UInt8]) -> [UInt8] {
        var h = initial
        var padded = message
        padded.append(0x80)
        while padded.count % 128 != 112 { padded.append(0) }
        padded += [UInt8](repeating: 0, count: 8)  // the high 64 bits of the 128-bit length
        let bits = UInt64(message.count) &* 8
        for shift in stride(from: 56, through: 0, by: -8) { padded.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        var w = [UInt64](repeating: 0, count: 80)
        for block in stride(from: 0, to: padded.count, by: 128) {
            for t in 0..<16 {
                var word: UInt64 = 0
                for j in 0..<8 { word = word << 8 | UInt64(padded[block + t * 8 + j]) }
                w[t] = word
            }
            for t in 16..<80 {
                let s0 = w[t - 15].rotatedRight(1) ^ w[t - 15].rotatedRight(8) ^ (w[t - 15] >> 7)
                let s1 = w[t - 2].rotatedRight(19) ^ w[t - 2].rotatedRight(61) ^ (w[t - 2] >> 6)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
            for t in 0..<80 {
                let sum1 = e.rotatedRight(14) ^ e.rotatedRight(18) ^ e.rotatedRight(41)
                let choice = (e & f) ^ (~e & g)
                let t1 = hh &+ sum1 &+ choice &+ k[t] &+ w[t]
                let sum0 = a.rotatedRight(28) ^ a.rotatedRight(34) ^ a.rotatedRight(39)
                let majority = (a & b) ^ (a & c) ^ (b & c)
                let t2 = sum0 &+ majority
                (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
            }
            for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
        }
        var out: [UInt8] = []
        for word in h.prefix(4) { for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) } }
        return out
    }
}

extension UInt64 {
    fileprivate func rotatedRight(_ n: UInt64) -> UInt64 { (self >> n) | (self << (64 - n)) }
}
