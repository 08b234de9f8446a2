/// One `a=crypto` attribute of SDES (RFC 4568 §9.1): `<tag> <crypto-suite> <key-params>`,
/// where Tandem reads and writes the `inline:` key method with a base64 master key ‖ salt
/// (§6.1), an optional lifetime and no MKI. Session parameters are kept as they are.
public struct SDESCrypto: Sendable, Hashable {
    /// AES_CM_128_HMAC_SHA1_80 (RFC 4568 §6.2.1): 128-bit key, 112-bit salt, 80-bit tag.
    public static let aesCM128HMACSHA1_80 = "AES_CM_128_HMAC_SHA1_80"
    /// Master key plus salt of ``aesCM128HMACSHA1_80``, in bytes.
    public static let keyAndSaltLength = 30

    /// 1–999999999 (§9.1: at most 9 digits).
    public var tag: UInt32
    public var suite: String
    /// The master key followed by the master salt.
    public var keyAndSalt: [UInt8]
    /// The `|lifetime` of the key parameter, as written (`2^31`, `1000`), nil when absent.
    public var lifetime: String?
    /// Session parameters after the key parameters (`UNENCRYPTED_SRTCP`, `KDR=…`), as written.
    public var sessionParameters: [String]

    public init(tag: UInt32, suite: String = aesCM128HMACSHA1_80, keyAndSalt: [UInt8], lifetime: String? = nil, sessionParameters: [String] = []) {
        self.tag = tag
        self.suite = suite
        self.keyAndSalt = keyAndSalt
        self.lifetime = lifetime
        self.sessionParameters = sessionParameters
    }

    /// Why an `a=crypto` value was not taken.
    public enum ParseError: Error, Sendable, Equatable {
        case malformed
        case badTag
        /// Not `inline:`, more than one key, or an MKI (not supported).
        case unsupportedKeyParameters
        case badKey
    }

    /// Parses the attribute value (after `crypto:`); at most 1024 bytes are looked at.
    public init(parsing value: String) throws(ParseError) {
        guard value.utf8.count <= 1024 else { throw .malformed }
        let fields = value.split(separator: " ", omittingEmptySubsequences: true)
        guard fields.count >= 3 else { throw .malformed }
        guard fields[0].count <= 9, let tag = UInt32(fields[0]), tag >= 1 else { throw .badTag }
        self.tag = tag
        suite = String(fields[1])
        let keyParameters = fields[2]
        guard keyParameters.hasPrefix("inline:"), !keyParameters.contains(";") else { throw .unsupportedKeyParameters }
        let parts = keyParameters.dropFirst("inline:".count).split(separator: "|", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !(parts.count == 2 && parts[1].contains(":")) else { throw .unsupportedKeyParameters }
        guard let key = Base64.decode(parts[0]) else { throw .badKey }
        keyAndSalt = key
        lifetime = parts.count == 2 ? String(parts[1]) : nil
        sessionParameters = fields.dropFirst(3).map(String.init)
    }

    /// The attribute value: `1 AES_CM_128_HMAC_SHA1_80 inline:…`.
    public var value: String {
        var text = "\(tag) \(suite) inline:\(Base64.encode(keyAndSalt))"
        if let lifetime { text += "|\(lifetime)" }
        for parameter in sessionParameters { text += " \(parameter)" }
        return text
    }

    /// Whether Tandem can run this line: AES_CM_128_HMAC_SHA1_80 with a 30-byte key and salt
    /// and no session parameter that changes the transform (UNENCRYPTED_*, a KDR, FEC).
    public var isUsable: Bool {
        suite == Self.aesCM128HMACSHA1_80 && keyAndSalt.count == Self.keyAndSaltLength && sessionParameters.isEmpty
    }
}

extension MediaDescription {
    /// The stream's `a=crypto` lines that parse, in order.
    public var cryptoAttributes: [SDESCrypto] { values(of: "crypto").compactMap { try? SDESCrypto(parsing: $0) } }
}

/// RFC 4648 §4 base64, as SDES keys are written.
enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Nil for characters outside the alphabet, bad padding or a length not a multiple of 4.
    static func decode(_ text: Substring) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard !chars.isEmpty, chars.count % 4 == 0, chars.count <= 1024 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            var values: [UInt8] = []
            var padding = 0
            for j in 0..<4 {
                let c = chars[i + j]
                if c == UInt8(ascii: "=") {
                    guard i + 4 == chars.count, j >= 2 else { return nil }
                    padding += 1
                    values.append(0)
                } else {
                    guard padding == 0, let v = alphabet.firstIndex(of: c) else { return nil }
                    values.append(UInt8(v))
                }
            }
            out.append(values[0] << 2 | values[1] >> 4)
            if padding < 2 { out.append((values[1] & 0x0F) << 4 | values[2] >> 2) }
            if padding < 1 { out.append((values[2] & 0x03) << 6 | values[3]) }
            i += 4
        }
        return out
    }
}
