/// TURN ChannelData framing, RFC 8656 §12.4 (RFC 5766 §11.4).
///
/// A 4-byte header (channel number, length) and the application data; over TCP/TLS the
/// message is padded to a multiple of four bytes (§12.5).
public enum ChannelData {
    /// Channel numbers a client may bind. RFC 8656 §12 narrowed RFC 5766's range to
    /// 0x4000–0x4FFF (for RFC 7983 demultiplexing beside DTLS); a TURN server that does not
    /// share its port with DTLS accepts the RFC 5766 range, which RFC 5766 clients
    /// (coturn's own among them) still draw from. RFC 5766 §11 names "0x4000 through
    /// 0x7FFF" (and miscounts it as 16,383 values); coturn's client does pick 0x7FFF, so it
    /// is accepted.
    public static let validNumbers: ClosedRange<UInt16> = 0x4000...0x7FFF
    /// The header length.
    public static let headerLength = 4

    /// Whether a first byte can start a ChannelData message (0b01, RFC 7983 range 64–79).
    @inlinable
    public static func looksLikeChannelData(firstByte: UInt8) -> Bool { firstByte & 0xC0 == 0x40 }

    /// The header of a ChannelData message.
    public struct Header: Sendable, Hashable {
        public var channelNumber: UInt16
        public var length: Int
    }

    /// Reads the header of a ChannelData message from `bytes` (at least 4 bytes).
    /// Throws `.badChannelNumber` for numbers outside 0x4000–0x7FFF and `.truncated`
    /// when fewer than `length` data bytes follow.
    public static func parseHeader<C: Collection>(_ bytes: C) throws(STUNError) -> Header where C.Element == UInt8, C.Index == Int {
        guard bytes.count >= 4 else { throw .truncated }
        let s = bytes.startIndex
        let number = UInt16(bytes[s]) << 8 | UInt16(bytes[s + 1])
        guard number >= 0x4000, number <= 0x7FFF else { throw .badChannelNumber }
        let length = Int(bytes[s + 2]) << 8 | Int(bytes[s + 3])
        guard bytes.count - 4 >= length else { throw .truncated }
        return Header(channelNumber: number, length: length)
    }

    /// Encodes a ChannelData message, padded to 4 bytes when `padded` (stream transports).
    public static func encode(channelNumber: UInt16, data: some Collection<UInt8>, padded: Bool) -> [UInt8] {
        var out: [UInt8] = [UInt8(channelNumber >> 8), UInt8(channelNumber & 0xFF), UInt8(data.count >> 8), UInt8(data.count & 0xFF)]
        out.append(contentsOf: data)
        if padded { out.append(contentsOf: [UInt8](repeating: 0, count: (4 - data.count % 4) % 4)) }
        return out
    }
}
