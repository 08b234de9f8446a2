import CryptoExtras
import Foundation
import Synchronization

/// An administrator's password hash: scrypt (RFC 7914), a memory-hard KDF, kept as a PHC
/// string `$scrypt$ln=17,r=8,p=1$<salt>$<hash>` (base64 without padding), so the cost of
/// each stored hash travels with it and can be raised later without invalidating old ones.
public struct PasswordHash: Sendable, Equatable, CustomStringConvertible {
    /// scrypt's cost parameters: N = 2^logN, block size r, parallelism p (RFC 7914 §2).
    public struct Cost: Sendable, Equatable {
        public var logN: Int
        public var blockSize: Int
        public var parallelism: Int

        /// OWASP's recommendation for scrypt (N = 2^17, r = 8, p = 1): 128 MiB and about
        /// a third of a second per hash on one core here.
        public static let standard = Cost(logN: 17, blockSize: 8, parallelism: 1)
        /// For tests only: 2^10.
        public static let minimal = Cost(logN: 10, blockSize: 8, parallelism: 1)

        /// The bounds a stored hash must keep to be believed (a hash written elsewhere with
        /// absurd parameters must not make a sign-in allocate gigabytes).
        static let logNRange = 10...20
        static let blockSizeRange = 1...32
        static let parallelismRange = 1...4

        /// The memory scrypt needs: 128 · r · N bytes for V, plus 128 · r · p for B.
        var memory: Int { 128 * blockSize * (1 << logN) + 128 * blockSize * parallelism + 4096 }
    }

    /// Why a stored hash text was not accepted.
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notScrypt
        case invalidParameters(String)
        case invalidEncoding

        public var description: String {
            switch self {
            case .notScrypt: "not a $scrypt$ PHC string"
            case .invalidParameters(let p): "scrypt parameters out of bounds: \(p)"
            case .invalidEncoding: "salt or hash is not base64 of the expected length"
            }
        }
    }

    public let cost: Cost
    public let salt: [UInt8]
    public let hash: [UInt8]

    static let saltLength = 16
    static let hashLength = 32
    /// Passwords longer than this are refused before hashing (a megabyte of password is an attack).
    public static let maximumPasswordLength = 1024
    /// Fewer characters than this are refused when a password is set.
    public static let minimumPasswordLength = 12

    /// Hashes `password` with a fresh random salt.
    public static func make(_ password: String, cost: Cost = .standard) throws -> PasswordHash {
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<saltLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return PasswordHash(cost: cost, salt: salt, hash: try derive(password, salt: salt, cost: cost))
    }

    /// Whether `password` produces this hash (compared in constant time).
    public func verify(_ password: String) -> Bool {
        guard password.utf8.count <= Self.maximumPasswordLength,
              let candidate = try? Self.derive(password, salt: salt, cost: cost), candidate.count == hash.count
        else { return false }
        var difference: UInt8 = 0
        for i in 0..<hash.count { difference |= candidate[i] ^ hash[i] }
        return difference == 0
    }

    /// Parses a PHC string written by ``description``.
    public init(parsing text: String) throws(ParseError) {
        guard text.utf8.count <= 256 else { throw .notScrypt }
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        guard fields.count == 5, fields[0].isEmpty, fields[1] == "scrypt" else { throw .notScrypt }
        var values: [Substring: Int] = [:]
        for pair in fields[2].split(separator: ",") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, kv[1].count <= 3, let v = Int(kv[1]) else { throw .invalidParameters(String(fields[2])) }
            values[kv[0]] = v
        }
        guard values.count == 3, let logN = values["ln"], let r = values["r"], let p = values["p"],
              Cost.logNRange.contains(logN), Cost.blockSizeRange.contains(r), Cost.parallelismRange.contains(p)
        else { throw .invalidParameters(String(fields[2])) }
        guard let salt = Self.decode(fields[3]), salt.count >= 8, salt.count <= 64,
              let hash = Self.decode(fields[4]), hash.count == Self.hashLength
        else { throw .invalidEncoding }
        self.init(cost: Cost(logN: logN, blockSize: r, parallelism: p), salt: salt, hash: hash)
    }

    init(cost: Cost, salt: [UInt8], hash: [UInt8]) {
        self.cost = cost
        self.salt = salt
        self.hash = hash
    }

    public var description: String {
        "$scrypt$ln=\(cost.logN),r=\(cost.blockSize),p=\(cost.parallelism)$\(Self.encode(salt))$\(Self.encode(hash))"
    }

    /// One derivation at a time in the process: each takes 128 MiB at the standard cost, so
    /// a burst of sign-ins queues instead of exhausting memory.
    private static let gate = Mutex(())

    static func derive(_ password: String, salt: [UInt8], cost: Cost) throws -> [UInt8] {
        try gate.withLock { _ in
            let key = try KDF.Scrypt.deriveKey(
                from: Array(password.utf8), salt: salt, outputByteCount: hashLength,
                rounds: 1 << cost.logN, blockSize: cost.blockSize, parallelism: cost.parallelism, maxMemory: cost.memory)
            return key.withUnsafeBytes { Array($0) }
        }
    }

    private static let decoys = Mutex<[Int: PasswordHash]>([:])

    /// A hash of a random password at `cost`, made once per process: a sign-in for an account
    /// that does not exist is checked against it, so it takes as long as one that does.
    static func decoy(_ cost: Cost) -> PasswordHash {
        if let d = decoys.withLock({ $0[cost.logN] }) { return d }
        var generator = SystemRandomNumberGenerator()
        let password = String((0..<24).map { _ in Character(Unicode.Scalar(UInt8.random(in: 97...122, using: &generator))) })
        let d = (try? make(password, cost: cost)) ?? PasswordHash(cost: cost, salt: Array(repeating: 0, count: saltLength), hash: Array(repeating: 0, count: hashLength))
        decoys.withLock { $0[cost.logN] = d }
        return d
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var s = Data(bytes).base64EncodedString()
        while s.hasSuffix("=") { s.removeLast() }
        return s
    }

    static func decode(_ text: Substring) -> [UInt8]? {
        guard text.count <= 128 else { return nil }
        var s = String(text)
        while s.count % 4 != 0 { s += "=" }
        return Data(base64Encoded: s).map(Array.init)
    }
}
