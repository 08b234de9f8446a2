/// Why an RTP or RTCP packet was refused.
public enum RTPError: Error, Sendable, Equatable {
    case tooShort
    case badVersion
    case badLength
    case badPadding
    case tooManyPackets
}

/// An RTP packet's fixed header, CSRCs and extension located in a buffer (RFC 3550 §5.1,
/// RFC 8285 header extensions kept opaque). Parsing does not copy: the payload is a range
/// of the buffer the packet came in, and rewriting sequence number, timestamp or SSRC
/// for the other leg happens in place.
public struct RTPHeader: Sendable, Hashable {
    public var marker: Bool
    public var payloadType: UInt8
    public var sequenceNumber: UInt16
    public var timestamp: UInt32
    public var ssrc: UInt32
    /// Number of CSRC identifiers (0–15).
    public var csrcCount: Int
    public var hasExtension: Bool
    /// Bytes from the start of the packet to the payload (fixed header, CSRCs, extension).
    public var headerLength: Int
    /// Payload bytes (padding excluded).
    public var payloadLength: Int
    public var paddingLength: Int

    /// Size of the fixed header.
    public static let fixedLength = 12

    public init(marker: Bool = false, payloadType: UInt8, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32) {
        self.marker = marker
        self.payloadType = payloadType
        self.sequenceNumber = sequenceNumber
        self.timestamp = timestamp
        self.ssrc = ssrc
        csrcCount = 0
        hasExtension = false
        headerLength = Self.fixedLength
        payloadLength = 0
        paddingLength = 0
    }

    /// Parses the header of the RTP packet in `packet`.
    public init(parsing packet: UnsafeRawBufferPointer) throws(RTPError) {
        guard packet.count >= Self.fixedLength else { throw .tooShort }
        let b0 = packet[0], b1 = packet[1]
        guard b0 >> 6 == 2 else { throw .badVersion }
        marker = b1 & 0x80 != 0
        payloadType = b1 & 0x7F
        sequenceNumber = UInt16(packet[2]) << 8 | UInt16(packet[3])
        timestamp = packet.loadBigEndianUInt32(at: 4)
        ssrc = packet.loadBigEndianUInt32(at: 8)
        csrcCount = Int(b0 & 0x0F)
        hasExtension = b0 & 0x10 != 0
        var offset = Self.fixedLength + 4 * csrcCount
        if hasExtension {
            guard packet.count >= offset + 4 else { throw .tooShort }
            let words = Int(UInt16(packet[offset + 2]) << 8 | UInt16(packet[offset + 3]))
            offset += 4 + 4 * words
        }
        guard packet.count >= offset else { throw .tooShort }
        headerLength = offset
        paddingLength = 0
        if b0 & 0x20 != 0 {
            guard let last = packet.last, last > 0, Int(last) <= packet.count - offset else { throw .badPadding }
            paddingLength = Int(last)
        }
        payloadLength = packet.count - offset - paddingLength
    }

    /// Writes the 12-byte fixed header (no CSRCs, no extension, no padding) at the start of `buffer`.
    public func writeFixedHeader(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= Self.fixedLength)
        buffer[0] = 0x80
        buffer[1] = (marker ? 0x80 : 0) | (payloadType & 0x7F)
        buffer.storeBigEndian(sequenceNumber, at: 2)
        buffer.storeBigEndian(timestamp, at: 4)
        buffer.storeBigEndian(ssrc, at: 8)
    }

    /// The packet's payload within `packet`.
    public func payload(in packet: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: packet[headerLength..<(headerLength + payloadLength)])
    }

    /// Rewrites the marker, payload type, sequence number, timestamp and SSRC of the packet in `packet` in place.
    public static func rewrite(_ packet: UnsafeMutableRawBufferPointer, marker: Bool? = nil, payloadType: UInt8? = nil, sequenceNumber: UInt16, timestamp: UInt32, ssrc: UInt32) {
        precondition(packet.count >= fixedLength)
        if let payloadType { packet[1] = (packet[1] & 0x80) | (payloadType & 0x7F) }
        if let marker { packet[1] = (packet[1] & 0x7F) | (marker ? 0x80 : 0) }
        packet.storeBigEndian(sequenceNumber, at: 2)
        packet.storeBigEndian(timestamp, at: 4)
        packet.storeBigEndian(ssrc, at: 8)
    }

    /// A whole packet: this header (fixed part only) followed by `payload`.
    public func packet(payload: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.fixedLength)
        out.withUnsafeMutableBytes { writeFixedHeader(into: $0) }
        out.append(contentsOf: payload)
        return out
    }
}

/// RFC 5761 §4 / RFC 7983: with rtcp-mux, an RTP/RTCP packet whose second byte is 192–223
/// (payload types 64–95 with the marker bit) is RTCP.
public func isRTCP(_ packet: UnsafeRawBufferPointer) -> Bool {
    packet.count >= 2 && (192...223).contains(packet[1])
}

extension UnsafeRawBufferPointer {
    @inline(__always)
    func loadBigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always)
    func loadBigEndianUInt16(at offset: Int) -> UInt16 {
        UInt16(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func storeBigEndian<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: T.self)
    }
}
