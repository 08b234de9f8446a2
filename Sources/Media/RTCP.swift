/// A reception report block (RFC 3550 §6.4.1).
public struct ReportBlock: Sendable, Hashable {
    public var ssrc: UInt32
    /// Fraction of packets lost since the last report, in 1/256.
    public var fractionLost: UInt8
    /// Cumulative packets lost (24-bit signed).
    public var cumulativeLost: Int32
    public var extendedHighestSequence: UInt32
    /// Interarrival jitter in timestamp units.
    public var jitter: UInt32
    /// Middle 32 bits of the NTP timestamp of the last SR received from this source.
    public var lastSenderReport: UInt32
    /// Delay since that SR, in 1/65536 s.
    public var delaySinceLastSenderReport: UInt32

    public init(ssrc: UInt32, fractionLost: UInt8, cumulativeLost: Int32, extendedHighestSequence: UInt32, jitter: UInt32, lastSenderReport: UInt32, delaySinceLastSenderReport: UInt32) {
        self.ssrc = ssrc
        self.fractionLost = fractionLost
        self.cumulativeLost = cumulativeLost
        self.extendedHighestSequence = extendedHighestSequence
        self.jitter = jitter
        self.lastSenderReport = lastSenderReport
        self.delaySinceLastSenderReport = delaySinceLastSenderReport
    }
}

/// Sender information of an SR (RFC 3550 §6.4.1).
public struct SenderInfo: Sendable, Hashable {
    /// 64-bit NTP timestamp.
    public var ntpTimestamp: UInt64
    public var rtpTimestamp: UInt32
    public var packetCount: UInt32
    public var octetCount: UInt32

    public init(ntpTimestamp: UInt64, rtpTimestamp: UInt32, packetCount: UInt32, octetCount: UInt32) {
        self.ntpTimestamp = ntpTimestamp
        self.rtpTimestamp = rtpTimestamp
        self.packetCount = packetCount
        self.octetCount = octetCount
    }

    /// The middle 32 bits, as a receiver echoes them in LSR (RFC 3550 §6.4.1).
    public var compactNTP: UInt32 { UInt32(truncatingIfNeeded: ntpTimestamp >> 16) }
}

/// One SDES chunk (RFC 3550 §6.5): a source and its items (type, text).
public struct SDESChunk: Sendable, Hashable {
    public var ssrc: UInt32
    public var items: [SDESItem]
    public init(ssrc: UInt32, items: [SDESItem]) {
        self.ssrc = ssrc
        self.items = items
    }
}

public struct SDESItem: Sendable, Hashable {
    /// 1 CNAME, 2 NAME, … 8 PRIV.
    public var type: UInt8
    public var text: [UInt8]
    public init(type: UInt8, text: [UInt8]) {
        self.type = type
        self.text = text
    }
    public static func cname(_ s: String) -> SDESItem { SDESItem(type: 1, text: Array(s.utf8.prefix(255))) }
}

/// A NACK entry (RFC 4585 §6.2.1): a lost packet id and a bitmask of the following 16.
public struct NACKEntry: Sendable, Hashable {
    public var packetID: UInt16
    public var lostBitmask: UInt16
    public init(packetID: UInt16, lostBitmask: UInt16) {
        self.packetID = packetID
        self.lostBitmask = lostBitmask
    }
    /// Every sequence number this entry reports lost.
    public var sequenceNumbers: [UInt16] {
        [packetID] + (0..<16).compactMap { lostBitmask & (1 << $0) != 0 ? packetID &+ UInt16($0 + 1) : nil }
    }
}

/// One RTCP packet of a compound packet (RFC 3550 §6, RFC 4585 §6 feedback, RFC 5104 FIR).
/// Types Tandem does not interpret are kept whole in ``other`` so they can be relayed.
public enum RTCPPacket: Sendable, Hashable {
    case senderReport(ssrc: UInt32, sender: SenderInfo, reports: [ReportBlock])
    case receiverReport(ssrc: UInt32, reports: [ReportBlock])
    case sourceDescription([SDESChunk])
    case goodbye(ssrcs: [UInt32], reason: [UInt8]?)
    /// Generic NACK: RTPFB (205) FMT 1.
    case genericNACK(sender: UInt32, media: UInt32, entries: [NACKEntry])
    /// Picture Loss Indication: PSFB (206) FMT 1.
    case pictureLossIndication(sender: UInt32, media: UInt32)
    /// Full Intra Request: PSFB (206) FMT 4 (RFC 5104 §4.3.1), entries of (SSRC, sequence number).
    case fullIntraRequest(sender: UInt32, entries: [FIREntry])
    /// Any other packet: its header's count/format field, type and body (after the 4-byte header).
    case other(count: UInt8, type: UInt8, body: [UInt8])

    public struct FIREntry: Sendable, Hashable {
        public var ssrc: UInt32
        public var sequenceNumber: UInt8
        public init(ssrc: UInt32, sequenceNumber: UInt8) {
            self.ssrc = ssrc
            self.sequenceNumber = sequenceNumber
        }
    }

    public static let typeSR: UInt8 = 200, typeRR: UInt8 = 201, typeSDES: UInt8 = 202, typeBYE: UInt8 = 203
    public static let typeRTPFB: UInt8 = 205, typePSFB: UInt8 = 206

    /// Parses a compound RTCP packet (RFC 3550 §6.1) into its packets. At most 64 packets.
    public static func parseCompound(_ data: UnsafeRawBufferPointer) throws(RTPError) -> [RTCPPacket] {
        var packets: [RTCPPacket] = []
        var offset = 0
        while offset < data.count {
            guard packets.count < 64 else { throw .tooManyPackets }
            guard data.count - offset >= 4 else { throw .tooShort }
            let b0 = data[offset]
            guard b0 >> 6 == 2 else { throw .badVersion }
            let length = (Int(data.loadBigEndianUInt16(at: offset + 2)) + 1) * 4
            guard offset + length <= data.count else { throw .badLength }
            var body = UnsafeRawBufferPointer(rebasing: data[(offset + 4)..<(offset + length)])
            if b0 & 0x20 != 0 {
                guard let pad = body.last, pad > 0, Int(pad) <= body.count else { throw .badPadding }
                body = UnsafeRawBufferPointer(rebasing: body[0..<(body.count - Int(pad))])
            }
            packets.append(try parseOne(count: b0 & 0x1F, type: data[offset + 1], body: body))
            offset += length
        }
        return packets
    }

    static func parseOne(count: UInt8, type: UInt8, body: UnsafeRawBufferPointer) throws(RTPError) -> RTCPPacket {
        func reports(at start: Int) throws(RTPError) -> [ReportBlock] {
            guard body.count >= start + Int(count) * 24 else { throw .badLength }
            return (0..<Int(count)).map { i in
                let o = start + i * 24
                let lost = body.loadBigEndianUInt32(at: o + 4)
                var cumulative = Int32(bitPattern: lost & 0x00FF_FFFF)
                if cumulative & 0x0080_0000 != 0 { cumulative -= 0x0100_0000 }
                return ReportBlock(ssrc: body.loadBigEndianUInt32(at: o), fractionLost: UInt8(lost >> 24), cumulativeLost: cumulative,
                                   extendedHighestSequence: body.loadBigEndianUInt32(at: o + 8), jitter: body.loadBigEndianUInt32(at: o + 12),
                                   lastSenderReport: body.loadBigEndianUInt32(at: o + 16), delaySinceLastSenderReport: body.loadBigEndianUInt32(at: o + 20))
            }
        }
        switch type {
        case typeSR:
            guard body.count >= 24 else { throw .badLength }
            let ntp = UInt64(body.loadBigEndianUInt32(at: 4)) << 32 | UInt64(body.loadBigEndianUInt32(at: 8))
            let info = SenderInfo(ntpTimestamp: ntp, rtpTimestamp: body.loadBigEndianUInt32(at: 12), packetCount: body.loadBigEndianUInt32(at: 16), octetCount: body.loadBigEndianUInt32(at: 20))
            return .senderReport(ssrc: body.loadBigEndianUInt32(at: 0), sender: info, reports: try reports(at: 24))
        case typeRR:
            guard body.count >= 4 else { throw .badLength }
            return .receiverReport(ssrc: body.loadBigEndianUInt32(at: 0), reports: try reports(at: 4))
        case typeSDES:
            var chunks: [SDESChunk] = []
            var o = 0
            for _ in 0..<count {
                guard body.count >= o + 4 else { throw .badLength }
                var chunk = SDESChunk(ssrc: body.loadBigEndianUInt32(at: o), items: [])
                o += 4
                while true {
                    guard o < body.count else { throw .badLength }
                    let itemType = body[o]
                    if itemType == 0 {
                        o = (o + 4) & ~3  // the null item, then padding to a 32-bit boundary
                        break
                    }
                    guard o + 2 <= body.count, o + 2 + Int(body[o + 1]) <= body.count else { throw .badLength }
                    chunk.items.append(SDESItem(type: itemType, text: Array(body[(o + 2)..<(o + 2 + Int(body[o + 1]))])))
                    o += 2 + Int(body[o + 1])
                }
                chunks.append(chunk)
            }
            return .sourceDescription(chunks)
        case typeBYE:
            guard body.count >= Int(count) * 4 else { throw .badLength }
            let ssrcs = (0..<Int(count)).map { body.loadBigEndianUInt32(at: $0 * 4) }
            var reason: [UInt8]?
            let o = Int(count) * 4
            if body.count > o {
                let n = Int(body[o])
                guard body.count >= o + 1 + n else { throw .badLength }
                reason = Array(body[(o + 1)..<(o + 1 + n)])
            }
            return .goodbye(ssrcs: ssrcs, reason: reason)
        case typeRTPFB where count == 1:
            guard body.count >= 8, (body.count - 8) % 4 == 0 else { throw .badLength }
            let entries = stride(from: 8, to: body.count, by: 4).map { NACKEntry(packetID: body.loadBigEndianUInt16(at: $0), lostBitmask: body.loadBigEndianUInt16(at: $0 + 2)) }
            return .genericNACK(sender: body.loadBigEndianUInt32(at: 0), media: body.loadBigEndianUInt32(at: 4), entries: entries)
        case typePSFB where count == 1:
            guard body.count >= 8 else { throw .badLength }
            return .pictureLossIndication(sender: body.loadBigEndianUInt32(at: 0), media: body.loadBigEndianUInt32(at: 4))
        case typePSFB where count == 4:
            guard body.count >= 8, (body.count - 8) % 8 == 0 else { throw .badLength }
            let entries = stride(from: 8, to: body.count, by: 8).map { FIREntry(ssrc: body.loadBigEndianUInt32(at: $0), sequenceNumber: body[$0 + 4]) }
            return .fullIntraRequest(sender: body.loadBigEndianUInt32(at: 0), entries: entries)
        default:
            return .other(count: count, type: type, body: Array(body))
        }
    }

    /// Serializes a compound packet (RFC 3550 §6.1); each packet padded to 32 bits where its body needs it.
    public static func serializeCompound(_ packets: [RTCPPacket]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(packets.count * 32)
        for p in packets { p.append(to: &out) }
        return out
    }

    public func serialized() -> [UInt8] {
        var out: [UInt8] = []
        append(to: &out)
        return out
    }

    func append(to out: inout [UInt8]) {
        var body: [UInt8] = []
        let count: UInt8
        let type: UInt8
        func u32(_ v: UInt32) { body += [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
        func u16(_ v: UInt16) { body += [UInt8(v >> 8), UInt8(truncatingIfNeeded: v)] }
        func blocks(_ reports: [ReportBlock]) {
            for r in reports.prefix(31) {
                u32(r.ssrc)
                u32(UInt32(r.fractionLost) << 24 | (UInt32(bitPattern: r.cumulativeLost) & 0x00FF_FFFF))
                u32(r.extendedHighestSequence)
                u32(r.jitter)
                u32(r.lastSenderReport)
                u32(r.delaySinceLastSenderReport)
            }
        }
        switch self {
        case .senderReport(let ssrc, let s, let reports):
            count = UInt8(min(reports.count, 31)); type = Self.typeSR
            u32(ssrc); u32(UInt32(s.ntpTimestamp >> 32)); u32(UInt32(truncatingIfNeeded: s.ntpTimestamp)); u32(s.rtpTimestamp); u32(s.packetCount); u32(s.octetCount)
            blocks(reports)
        case .receiverReport(let ssrc, let reports):
            count = UInt8(min(reports.count, 31)); type = Self.typeRR
            u32(ssrc)
            blocks(reports)
        case .sourceDescription(let chunks):
            count = UInt8(min(chunks.count, 31)); type = Self.typeSDES
            for c in chunks.prefix(31) {
                u32(c.ssrc)
                for item in c.items {
                    let text = item.text.prefix(255)
                    body += [item.type, UInt8(text.count)] + text
                }
                body.append(0)
                while body.count % 4 != 0 { body.append(0) }
            }
        case .goodbye(let ssrcs, let reason):
            count = UInt8(min(ssrcs.count, 31)); type = Self.typeBYE
            for s in ssrcs.prefix(31) { u32(s) }
            if let reason {
                let text = reason.prefix(255)
                body += [UInt8(text.count)] + text
                while body.count % 4 != 0 { body.append(0) }
            }
        case .genericNACK(let sender, let media, let entries):
            count = 1; type = Self.typeRTPFB
            u32(sender); u32(media)
            for e in entries { u16(e.packetID); u16(e.lostBitmask) }
        case .pictureLossIndication(let sender, let media):
            count = 1; type = Self.typePSFB
            u32(sender); u32(media)
        case .fullIntraRequest(let sender, let entries):
            count = 4; type = Self.typePSFB
            u32(sender); u32(0)
            for e in entries { u32(e.ssrc); body += [e.sequenceNumber, 0, 0, 0] }
        case .other(let c, let t, let b):
            count = c & 0x1F; type = t
            body = b
        }
        // A body that is not a whole number of words gets RTCP padding (RFC 3550 §6.4.1, P bit):
        // zeros, the last byte the padding length, so the body parses back exactly.
        var padding = 0
        if body.count % 4 != 0 {
            padding = 4 - body.count % 4
            body += [UInt8](repeating: 0, count: padding - 1) + [UInt8(padding)]
        }
        let words = UInt16(body.count / 4)
        out += [0x80 | (padding > 0 ? 0x20 : 0) | count, type, UInt8(words >> 8), UInt8(truncatingIfNeeded: words)]
        out += body
    }
}
