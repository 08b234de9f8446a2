import Datapath
import Metrics
import SDP
import WebRTC

/// The media of a call's SIP leg: RTP over UDP (RFC 3550, RFC 3551) on a socket of its own,
/// on the call's media loop, plain or SRTP (RFC 3711, AES_CM_128_HMAC_SHA1_80 keyed by SDES,
/// RFC 4568) as ``SIPAudio/srtp`` says. What the bridge hands it goes to the peer's address
/// from the SDP while our direction sends; what arrives from the peer's IP address goes
/// into the bridge toward the browser while our direction receives. The source port is
/// learned from the first packet (symmetric RTP behind a NAT, RFC 4961), the IP must match.
/// RTCP toward the SIP peer is not sent; RTCP from it is dropped.
public final class SIPRTPLeg: FarEnd, ReadableHandler {
    public let socket: UDPSocket
    public private(set) var audio: SIPAudio
    private var loop: DatapathLoop?
    /// The loop's receive batch (one `recvmmsg` per wake-up: a short batch shows the socket
    /// empty, so no read ends in EAGAIN).
    private var receiveBatch: ReceiveBatch?
    private var toBrowser: ((UnsafeRawBufferPointer) -> Void)?
    private var closed = false

    public struct Counters: Sendable, Equatable {
        public var sent = 0, received = 0
        /// Datagrams from another IP address than the peer's, or not RTP version 2.
        public var refused = 0
        public init() {}
    }

    public private(set) var counters = Counters()

    /// With DTMF by SIP INFO: the browser's RFC 4733 events (payload type
    /// ``SIPOfferAnswer/telephoneEventPayloadType`` from the bridge) are not sent as RTP but
    /// reported here, once per event (its first packet), as the digit (0-9 * # A-D).
    public var onTelephoneEvent: ((String) -> Void)?
    private var lastEventTimestamp: UInt32?

    /// SRTP of each direction while ``SIPAudio/srtp`` is set.
    private var protect: SRTPContext?
    private var unprotect: SRTPContext?
    /// Room for one packet and its SRTP tag, per direction (made once SRTP is keyed: a plain leg has none).
    private var sendScratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var receiveScratch = UnsafeMutableRawBufferPointer(start: nil, count: 0)

    public init(socket: UDPSocket, audio: SIPAudio) {
        self.socket = socket
        self.audio = audio
        rekey(nil)
    }

    deinit {
        sendScratch.deallocate()
        receiveScratch.deallocate()
    }

    /// A new description from the peer (its answer, 183, or a re-INVITE: hold, a new address, new keys).
    public func update(_ audio: SIPAudio) {
        let before = self.audio.srtp
        self.audio = audio
        rekey(before)
    }

    /// New SRTP contexts when the keys changed (a key that libsrtp refuses leaves the leg silent: counted as refused).
    private func rekey(_ before: SIPSRTPKeys?) {
        guard audio.srtp != before || (audio.srtp != nil && protect == nil) else { return }
        guard let keys = audio.srtp else {
            protect = nil
            unprotect = nil
            return
        }
        if sendScratch.isEmpty {
            sendScratch = .allocate(byteCount: 2048, alignment: 16)
            receiveScratch = .allocate(byteCount: 2048, alignment: 16)
        }
        protect = try? SRTPContext(profile: .aes128CMHMACSHA1_80, keyAndSalt: keys.outbound, direction: .outbound)
        unprotect = try? SRTPContext(profile: .aes128CMHMACSHA1_80, keyAndSalt: keys.inbound, direction: .inbound)
    }

    public func attach(loop: DatapathLoop, receiveBatch: ReceiveBatch, toBrowser: @escaping (UnsafeRawBufferPointer) -> Void) throws {
        self.loop = loop
        self.receiveBatch = receiveBatch
        self.toBrowser = toBrowser
        try loop.register(socket.fd, self)
    }

    public func receive(_ packet: UnsafeRawBufferPointer, send: (UnsafeRawBufferPointer) -> Void) {
        if let onTelephoneEvent, packet.count >= 16, packet[1] & 0x7F == SIPOfferAnswer.telephoneEventPayloadType {
            let timestamp = UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            if timestamp != lastEventTimestamp, let digit = Self.digit(ofEvent: packet[12]) {
                lastEventTimestamp = timestamp
                onTelephoneEvent(digit)
            }
            return
        }
        guard !closed, audio.direction.sends, let remote = audio.remote else { return }
        if audio.srtp != nil {
            guard let protect, packet.count + 16 <= sendScratch.count else { return }
            sendScratch.copyMemory(from: packet)
            guard let length = try? protect.protectRTP(sendScratch, length: packet.count) else { return }
            if socket.send(UnsafeRawBufferPointer(rebasing: sendScratch[0..<length]), to: remote).isSent { counters.sent += 1 }
            return
        }
        if socket.send(packet, to: remote).isSent { counters.sent += 1 }
    }

    public func readable() {
        guard let receiveBatch else { return }
        // Level-triggered: a bounded round here, the rest on the next wake-up.
        receiveBatch.drain(socket, rounds: 4) { i in
            guard !closed else { return false }
            let packet = receiveBatch.payload(i)
            guard !receiveBatch.isTruncated(i), packet.count >= 12, packet[0] >> 6 == 2, let source = receiveBatch.source(i),
                  let remote = audio.remote, Self.sameHost(source, remote) else {
                counters.refused += 1
                return true
            }
            // RTCP (payload types 200–204 with the marker bit, RFC 5761 §4) is not bridged.
            if (200...204).contains(packet[1]) { return true }
            var plain = packet
            if audio.srtp != nil {
                // SRTP: only what authenticates with the peer's key counts (and teaches the port).
                guard let unprotect, packet.count <= receiveScratch.count else { counters.refused += 1; return true }
                receiveScratch.copyMemory(from: packet)
                guard let length = try? unprotect.unprotectRTP(receiveScratch, length: packet.count) else {
                    counters.refused += 1
                    return true
                }
                plain = UnsafeRawBufferPointer(rebasing: receiveScratch[0..<length])
            }
            if source.port != remote.port { audio.remote = source }
            counters.received += 1
            if audio.direction.receives { toBrowser?(plain) }
            return true
        }
    }

    /// The DTMF digit of an RFC 4733 §3.2 event code (0–15), nil for other events.
    static func digit(ofEvent code: UInt8) -> String? {
        code < 16 ? String(Array("0123456789*#ABCD")[Int(code)]) : nil
    }

    static func sameHost(_ a: DatagramAddress, _ b: DatagramAddress) -> Bool {
        a.isIPv6 == b.isIPv6 && a.high == b.high && a.low == b.low
    }

    /// RTP of the SIP legs, counted when each leg closes (nothing is counted per packet).
    static let sentCounter = Counter(label: "tandem_gateway_sip_rtp_packets_total", dimensions: [("direction", "out")])
    static let receivedCounter = Counter(label: "tandem_gateway_sip_rtp_packets_total", dimensions: [("direction", "in")])

    public func close() {
        guard !closed else { return }
        closed = true
        Self.sentCounter.increment(by: counters.sent)
        Self.receivedCounter.increment(by: counters.received)
        loop?.deregister(socket.fd)
        socket.close()
        toBrowser = nil
    }
}
