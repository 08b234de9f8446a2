import Datapath
import STUN

/// The network side of one WebRTC leg: one UDP socket carrying STUN, DTLS, SRTP and SRTCP
/// together (BUNDLE and rtcp-mux), told apart by their first byte (RFC 7983 §7); the
/// ICE-lite agent answers checks and picks the selected address; DTLS runs over the
/// selected pair and keys SRTP. The owner sees plain RTP and RTCP in, and hands plain RTP
/// and RTCP out; everything is protected and sent here, only to the selected address and
/// only while consent is fresh (RFC 7675).
///
/// The leg's datagrams use either a socket of its own (a port from the media range) or the
/// loop's ``SharedUDPPort``, which hands it the datagrams of its ufrag and its validated
/// addresses and batches its sends.
///
/// Lives on one ``DatapathLoop``: its socket is registered there and every method runs on
/// that loop's thread. ``close()`` releases the socket (or its place on the shared port),
/// the DTLS association and the SRTP contexts.
public final class WebRTCLeg: ReadableHandler {
    /// Where the leg's datagrams come from and go to.
    public enum Transport {
        /// A socket of its own, read with `recvmmsg` into the loop's shared ``ReceiveBatch``.
        case socket(UDPSocket, ReceiveBatch)
        /// The loop's shared port.
        case shared(SharedUDPPort)
    }

    public enum State: Sendable, Equatable {
        case connecting
        case connected(SRTPProfile)
        case failed(String)
        case consentExpired
        case closed
    }

    /// Counters of one leg.
    public struct Counters: Sendable, Equatable {
        public var rtpIn = 0, rtpOut = 0, rtcpIn = 0, rtcpOut = 0
        public var bytesIn = 0, bytesOut = 0
        public var stunRequests = 0
        /// SRTP/SRTCP packets that failed authentication or replay checks.
        public var srtpRefused = 0
        /// Datagrams from addresses that never passed an ICE check, or of no known kind.
        public var unexpected = 0

        public init() {}
    }

    public let loop: DatapathLoop
    public let transport: Transport
    public private(set) var ice: ICELiteAgent
    public let dtls: DTLSTransport
    public private(set) var state: State = .connecting
    public private(set) var counters = Counters()
    /// Plain RTP from the browser (decrypted in place; the owner may rewrite it).
    public var onRTP: ((UnsafeMutableRawBufferPointer) -> Void)?
    /// A plain compound RTCP packet from the browser.
    public var onRTCP: ((UnsafeRawBufferPointer) -> Void)?
    public var onStateChange: ((State) -> Void)?

    private var inbound: SRTPContext?
    private var outbound: SRTPContext?
    private var selected: DatagramAddress?
    /// Where DTLS goes: the address the peer's DTLS came from, else the selected one.
    private var dtlsPeer: DatagramAddress?
    private var dtlsStarted = false
    private var sendBuffer = [UInt8](repeating: 0, count: 2048)
    /// Addresses bound to this leg on the shared port (those ICE validated), oldest first.
    private var boundAddresses: [DatagramAddress] = []

    public init(loop: DatapathLoop, transport: Transport, ice: ICELiteAgent, dtls: DTLSTransport) {
        self.loop = loop
        self.transport = transport
        self.ice = ice
        self.dtls = dtls
    }

    /// Registers the socket with the loop, or the leg's ufrag with the shared port. Call on the loop.
    public func start() throws(SocketError) {
        switch transport {
        case .socket(let socket, _): try loop.register(socket.fd, self)
        case .shared(let port): port.attach(self, usernameFragment: ice.local.usernameFragment)
        }
    }

    /// The remote address media goes to, once ICE selected one.
    public var selectedAddress: DatagramAddress? { selected }

    /// The leg's own socket is readable: one `recvmmsg` takes what is waiting (a leg gets
    /// 50–100 packets a second, so mostly one; a short batch means the socket is empty).
    public func readable() {
        guard case .socket(let socket, let batch) = transport else { return }
        batch.drain(socket, rounds: 8) { i in
            guard state != .closed else { return false }
            if !batch.isTruncated(i), let source = batch.source(i) {
                handle(batch.mutablePayload(i), from: source)
            } else {
                counters.unexpected += 1
            }
            return true
        }
    }

    /// Sends one datagram from the leg's port.
    @inline(__always)
    @discardableResult
    private func transmit(_ bytes: UnsafeRawBufferPointer, to destination: DatagramAddress) -> Bool {
        switch transport {
        case .socket(let socket, _):
            return socket.send(bytes, to: destination).isSent
        case .shared(let port):
            port.send(bytes, to: destination)
            return true
        }
    }

    private func transmit(_ bytes: [UInt8], to destination: DatagramAddress) {
        _ = bytes.withUnsafeBytes { transmit($0, to: destination) }
    }

    /// A datagram that arrived for this leg (from its socket, or routed by the shared port).
    func handle(_ datagram: UnsafeMutableRawBufferPointer, from source: DatagramAddress) {
        guard state != .closed else { return }
        guard let first = datagram.first else { return }
        switch first {
        case 0...3:
            counters.stunRequests += 1
            let now = DatapathLoop.monotonicMilliseconds()
            switch ice.receive(UnsafeRawBufferPointer(datagram), from: TransportAddress(source), now: now) {
            case .respond(let response, let newlySelected):
                transmit(response, to: source)
                bindOnSharedPort(source)
                if let newlySelected { select(DatagramAddress(newlySelected)) }
                if dtls.role == .client, !dtlsStarted { startDTLS(to: source) }
            case .reject(let response, _):
                transmit(response, to: source)
            case .ignore:
                break
            }
        case 20...63:
            guard isValidated(source) else { counters.unexpected += 1; return }
            dtlsPeer = source
            let wasHandshaking = dtls.state == .handshaking
            dtls.receive(UnsafeRawBufferPointer(datagram))
            flushDTLS()
            if wasHandshaking { dtlsAdvanced() } else if dtls.state == .closed { setState(.closed) }
        case 128...191:
            guard let inbound, source == selected || isValidated(source) else { counters.unexpected += 1; return }
            if datagram.count >= 2, (192...223).contains(datagram[1]) {
                guard let n = try? inbound.unprotectRTCP(datagram, length: datagram.count) else { counters.srtpRefused += 1; return }
                counters.rtcpIn += 1
                onRTCP?(UnsafeRawBufferPointer(rebasing: datagram[0..<n]))
            } else {
                guard let n = try? inbound.unprotectRTP(datagram, length: datagram.count) else { counters.srtpRefused += 1; return }
                counters.rtpIn += 1
                counters.bytesIn += n
                onRTP?(UnsafeMutableRawBufferPointer(rebasing: datagram[0..<n]))
            }
        default:
            counters.unexpected += 1
        }
    }

    /// A check from `address` passed: on the shared port, its other datagrams now reach this leg.
    private func bindOnSharedPort(_ address: DatagramAddress) {
        guard case .shared(let port) = transport, !boundAddresses.contains(address) else { return }
        if boundAddresses.count >= ICELiteAgent.maximumValidatedAddresses {
            let oldest = boundAddresses.removeFirst()
            if oldest != selected { port.unbind(oldest, from: self) } else { boundAddresses.append(oldest) }
        }
        boundAddresses.append(address)
        port.bind(address, to: self)
    }

    private func isValidated(_ source: DatagramAddress) -> Bool {
        source == selected || ice.validatedAddresses.contains(TransportAddress(source))
    }

    private func select(_ address: DatagramAddress) {
        selected = address
        if dtlsPeer == nil { dtlsPeer = address }
    }

    private func startDTLS(to address: DatagramAddress) {
        dtlsStarted = true
        if dtlsPeer == nil { dtlsPeer = address }
        dtls.start()
        flushDTLS()
    }

    private func flushDTLS() {
        guard let to = dtlsPeer ?? selected else { return }
        for datagram in dtls.takeOutgoing() { transmit(datagram, to: to) }
    }

    private func dtlsAdvanced() {
        switch dtls.state {
        case .handshaking:
            break
        case .connected(let keys):
            do {
                inbound = try SRTPContext(profile: keys.profile, keyAndSalt: keys.remote, direction: .inbound)
                outbound = try SRTPContext(profile: keys.profile, keyAndSalt: keys.local, direction: .outbound)
                setState(.connected(keys.profile))
            } catch {
                setState(.failed(error.description))
            }
        case .failed(let error):
            setState(.failed(error.description))
        case .closed:
            setState(.closed)
        }
    }

    private func setState(_ new: State) {
        guard state != new, state != .closed else { return }
        state = new
        onStateChange?(new)
    }

    /// Whether media may go out now: SRTP keyed, a selected address, consent fresh.
    public var maySend: Bool { outbound != nil && selected != nil && ice.maySend }

    /// Protects and sends the RTP packet of `length` bytes at the start of `buffer`, which
    /// needs 16 spare bytes after it. False when it could not go out.
    @discardableResult
    public func sendRTP(_ buffer: UnsafeMutableRawBufferPointer, length: Int) -> Bool {
        guard maySend, let outbound, let selected, let n = try? outbound.protectRTP(buffer, length: length) else { return false }
        counters.rtpOut += 1
        counters.bytesOut += length
        return transmit(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), to: selected)
    }

    /// Sends an RTP packet held in an array.
    @discardableResult
    public func sendRTP(_ packet: [UInt8]) -> Bool {
        guard packet.count + 32 <= sendBuffer.count else { return false }
        return sendBuffer.withUnsafeMutableBytes { b in
            packet.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: b[0..<packet.count]).copyMemory(from: $0) }
            return sendRTP(b, length: packet.count)
        }
    }

    /// Protects and sends a compound RTCP packet.
    @discardableResult
    public func sendRTCP(_ packet: [UInt8]) -> Bool {
        guard maySend, let outbound, let selected, packet.count + 32 <= sendBuffer.count else { return false }
        return sendBuffer.withUnsafeMutableBytes { b in
            packet.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: b[0..<packet.count]).copyMemory(from: $0) }
            guard let n = try? outbound.protectRTCP(b, length: packet.count) else { return false }
            counters.rtcpOut += 1
            return transmit(UnsafeRawBufferPointer(rebasing: b[0..<n]), to: selected)
        }
    }

    /// Timers: DTLS retransmission and consent expiry. Call every 10–50 ms.
    public func tick(now: Int64) {
        guard state != .closed else { return }
        if let t = dtls.timeoutMilliseconds, t == 0 {
            dtls.handleTimeout()
            flushDTLS()
            dtlsAdvanced()
        }
        if ice.checkConsent(now: now) { setState(.consentExpired) }
    }

    /// ICE restart with new credentials (a re-offer carrying a new ufrag/pwd).
    public func restartICE(local: ICECredentials, remote: ICECredentials?) {
        let old = ice.local.usernameFragment
        ice.restart(local: local, remote: remote)
        if case .shared(let port) = transport { port.rename(self, from: old, to: local.usernameFragment) }
    }

    /// Ends the leg: close_notify to the peer, then socket and contexts released.
    public func close() {
        guard state != .closed else { return }
        dtls.close()
        flushDTLS()
        ice.close()
        switch transport {
        case .socket(let socket, _):
            loop.deregister(socket.fd)
            socket.close()
        case .shared(let port):
            port.detach(self, usernameFragment: ice.local.usernameFragment, addresses: boundAddresses)
            boundAddresses = []
        }
        inbound = nil
        outbound = nil
        state = .closed
        onStateChange?(.closed)
        onRTP = nil
        onRTCP = nil
        onStateChange = nil
    }
}
