import Datapath
import STUN

#if canImport(Glibc)
import Glibc
#endif

/// The STUN/TURN request handlers (RFC 8489 §6.3, RFC 8656 §7–§12).
extension TURNLoopCore {
    /// Attributes this server understands; other comprehension-required ones get 420.
    static let knownAttributes: Set<STUNAttributeType> = [
        .mappedAddress, .username, .messageIntegrity, .messageIntegritySHA256, .errorCode, .unknownAttributes,
        .realm, .nonce, .xorMappedAddress, .channelNumber, .lifetime, .xorPeerAddress, .data,
        .xorRelayedAddress, .requestedAddressFamily, .evenPort, .requestedTransport, .dontFragment,
        .reservationToken, .priority, .useCandidate, .changeRequest,
        STUNAttributeType(rawValue: 0x0010),  // BANDWIDTH (draft-ietf-behave-turn-08), sent by some clients; ignored
    ]

    func stunFromClient(_ bytes: UnsafeRawBufferPointer, remote: DatagramAddress, socket: ClientSocket) {
        let address = TransportAddress(remote)
        let message: STUNMessage
        do {
            message = try STUNMessage.decode(bytes)
        } catch {
            counters.dropMalformed += 1
            return
        }
        let client = ClientContext(socket: socket, remote: remote, address: address)
        switch message.type.messageClass {
        case .request:
            refreshClock()
            guard limiter.allow(address.ip, now: now) else { counters.dropRateLimited += 1; return }
            shared.metrics.request(message.type.method.description)
            handleRequest(message, from: client)
        case .indication:
            if message.type.method == .send { sendIndication(message, from: client) }
        case .successResponse, .errorResponse:
            counters.dropMalformed += 1  // a server expects no responses
        }
    }

    func handleRequest(_ m: STUNMessage, from c: ClientContext) {
        let unknown = m.unknownComprehensionRequired(known: Self.knownAttributes)
        if !unknown.isEmpty {
            respondError(m, 420, "Unknown Attribute", extra: [.unknownAttributes(unknown)], to: c)
            return
        }
        do {
            switch m.type.method {
            case .binding: try binding(m, from: c)
            case .allocate: try allocate(m, from: c)
            case .refresh: try refresh(m, from: c)
            case .createPermission: try createPermission(m, from: c)
            case .channelBind: try channelBind(m, from: c)
            default: respondError(m, 400, "Bad Request: unsupported method", to: c)
            }
        } catch {
            respondError(m, 400, "Bad Request: malformed \(Self.attributeName(error))", to: c)
        }
    }

    static func attributeName(_ error: STUNError) -> String {
        if case .malformedAttribute(let t) = error { return STUNAttributeType(rawValue: t).description }
        return "attribute"
    }

    // MARK: responses

    func respond(_ request: STUNMessage, attributes: [STUNAttribute], key: [UInt8]?, to c: ClientContext) -> [UInt8] {
        var r = STUNMessage(type: STUNMessageType(method: request.type.method, messageClass: .successResponse), transactionID: request.transactionID)
        r.attributes = attributes + [.text(.software, config.software)]
        let bytes = r.encode(integrity: integrity(for: request, key: key), fingerprint: request.hadFingerprint)
        send(bytes, to: c)
        return bytes
    }

    func respondError(_ request: STUNMessage, _ code: Int, _ reason: String, extra: [STUNAttribute] = [], key: [UInt8]? = nil, to c: ClientContext) {
        var r = STUNMessage(type: STUNMessageType(method: request.type.method, messageClass: .errorResponse), transactionID: request.transactionID)
        r.attributes = [.errorCode(code, reason: reason)] + extra + [.text(.software, config.software)]
        shared.metrics.errorResponses.increment()
        send(r.encode(integrity: integrity(for: request, key: key), fingerprint: request.hadFingerprint), to: c)
    }

    func integrity(for request: STUNMessage, key: [UInt8]?) -> STUNMessage.Integrity {
        guard let key else { return .none }
        return request.integritySHA256Offset != nil ? .sha256(key: key) : .sha1(key: key)
    }

    /// 401/438 carry REALM and a fresh NONCE bound to this client (RFC 8489 §9.2.4).
    func challenge(_ request: STUNMessage, _ code: Int, _ reason: String, to c: ClientContext) {
        let nonce = shared.nonces.issue(for: c.address, transport: c.socket.transport.code, now: unixNow)
        respondError(request, code, reason, extra: [.text(.realm, config.realm), .text(.nonce, nonce)], to: c)
    }

    // MARK: authentication

    /// The long-term credential check of RFC 8656 §7.2 (step 2) and RFC 8489 §9.2.4:
    /// the integrity key and username when the request is authentic, else nil after answering.
    func authenticate(_ m: STUNMessage, from c: ClientContext) throws(STUNError) -> (key: [UInt8], username: String)? {
        guard m.hasIntegrity else {
            shared.metrics.authFailure("missing_integrity")
            challenge(m, 401, "Unauthorized", to: c)
            return nil
        }
        guard let username = try m.username, let realm = try m.realm, let nonce = try m.nonce else {
            respondError(m, 400, "Bad Request: USERNAME, REALM and NONCE are required", to: c)
            return nil
        }
        if case .failure = shared.nonces.validate(nonce, from: c.address, transport: c.socket.transport.code, now: unixNow) {
            shared.metrics.authFailure("stale_nonce")
            challenge(m, 438, "Stale Nonce", to: c)
            return nil
        }
        switch shared.authenticator.authenticate(m, username: username, realm: realm, now: unixNow) {
        case .success(let key):
            return (key, username)
        case .failure(let reason):
            shared.metrics.authFailure(reason.rawValue)
            logger.debug("authentication failed", metadata: ["client": "\(c.address)", "reason": "\(reason.rawValue)"])
            challenge(m, 401, "Unauthorized", to: c)
            return nil
        }
    }

    /// The allocation of this 5-tuple for Refresh/CreatePermission/ChannelBind, with the
    /// 437 and 441 checks (RFC 8656 §7.3, §9.2, §11.2).
    func existingAllocation(_ m: STUNMessage, from c: ClientContext, key: [UInt8], username: String) -> Allocation? {
        guard let a = allocations[c.key] else {
            respondError(m, 437, "Allocation Mismatch", key: key, to: c)
            return nil
        }
        guard a.username == username else {
            shared.metrics.authFailure("wrong_credentials")
            respondError(m, 441, "Wrong Credentials", key: key, to: c)
            return nil
        }
        return a
    }

    // MARK: Binding (RFC 8489 §6.3, RFC 5780 §7.2)

    func binding(_ m: STUNMessage, from c: ClientContext) throws(STUNError) {
        if let change = m.attribute(.changeRequest) {
            guard change.count == 4 else { throw .malformedAttribute(type: STUNAttributeType.changeRequest.rawValue) }
            if change[change.startIndex + 3] & 0x06 != 0 {
                // No alternate address to answer from (RFC 5780 §7.2).
                respondError(m, 420, "Unknown Attribute", extra: [.unknownAttributes([.changeRequest])], to: c)
                return
            }
        }
        _ = respond(m, attributes: [
            .xorAddress(.xorMappedAddress, c.address, transactionID: m.transactionID),
            .address(.mappedAddress, c.address),
        ], key: nil, to: c)
    }

    // MARK: Allocate (RFC 8656 §7.2, RFC 6156)

    func allocate(_ m: STUNMessage, from c: ClientContext) throws(STUNError) {
        if let existing = allocations[c.key] {
            if existing.allocateTransaction == m.transactionID {
                send(existing.allocateResponse, to: c)  // a retransmission: same answer
            } else {
                guard let (key, _) = try authenticate(m, from: c) else { return }
                respondError(m, 437, "Allocation Mismatch", key: key, to: c)
            }
            return
        }
        guard let (key, username) = try authenticate(m, from: c) else { return }
        guard let transport = try m.requestedTransport else {
            respondError(m, 400, "Bad Request: REQUESTED-TRANSPORT missing", key: key, to: c)
            return
        }
        guard transport == TURN.udpProtocol else {
            respondError(m, 442, "Unsupported Transport Protocol", key: key, to: c)
            return
        }
        let token = try m.reservationToken
        let evenPort = try m.evenPort
        let requestedFamily = try m.addressFamily(.requestedAddressFamily)
        let additionalFamily = try m.addressFamily(.additionalAddressFamily)
        if token != nil && (evenPort != nil || requestedFamily != nil || additionalFamily != nil) {
            respondError(m, 400, "Bad Request: RESERVATION-TOKEN with EVEN-PORT or address family", key: key, to: c)
            return
        }
        if requestedFamily != nil && additionalFamily != nil {
            respondError(m, 400, "Bad Request: both REQUESTED- and ADDITIONAL-ADDRESS-FAMILY", key: key, to: c)
            return
        }
        if additionalFamily == .ipv4 {
            respondError(m, 400, "Bad Request: ADDITIONAL-ADDRESS-FAMILY must be IPv6", key: key, to: c)
            return
        }
        var reservation: Reservation?
        if let token {
            reservation = shared.reservations.withLock { $0.removeValue(forKey: token) }
            guard reservation != nil else {
                respondError(m, 508, "Insufficient Capacity: unknown reservation token", key: key, to: c)
                return
            }
        }
        let primary = reservation?.address.ip.family ?? requestedFamily ?? .ipv4
        guard let primaryIP = reservation?.address.ip ?? shared.relayIP(for: primary) else {
            respondError(m, 440, "Address Family not Supported", key: key, to: c)
            return
        }
        let secondaryIP = additionalFamily.flatMap { shared.relayIP(for: $0) }
        let quotaUser = username.split(separator: ":", maxSplits: 1).dropFirst().first.map(String.init) ?? username
        guard shared.acquireQuota(user: quotaUser) else {
            shared.metrics.authFailure("quota")
            respondError(m, 486, "Allocation Quota Reached", key: key, to: c)
            return
        }
        let lifetime = config.lifetimes.allocationLifetime(requested: try m.lifetime)
        let dontFragment = m.has(.dontFragment)
        // The relay sockets (RFC 8656 §7.2 step 7): a reserved port, an even pair, or any port.
        var relaySockets: [UDPSocket] = []
        var reserveToken: UInt64?
        do throws(SocketError) {
            if let reservation {
                reservation.placeholder.close()
                relaySockets.append(try bindRelay(ip: primaryIP, choice: .exact(reservation.address.port), dontFragment: dontFragment))
            } else if evenPort == true {
                let t = UInt64.random(in: 1...UInt64.max)
                relaySockets.append(try bindEvenPairReserving(ip: primaryIP, token: t, dontFragment: dontFragment))
                reserveToken = t
            } else {
                relaySockets.append(try bindRelay(ip: primaryIP, choice: evenPort == false ? .even : .any, dontFragment: dontFragment))
            }
        } catch {
            logger.warning("no relay port", metadata: ["client": "\(c.address)", "error": "\(error)"])
            shared.releaseQuota(user: quotaUser)
            respondError(m, 508, "Insufficient Capacity", key: key, to: c)
            return
        }
        // The second family is best effort: without it the response says 508 for IPv6 (RFC 8656 §7.2).
        if let secondaryIP, let s = try? bindRelay(ip: secondaryIP, choice: .any, dontFragment: false) { relaySockets.append(s) }
        var relays: [Relay] = []
        let external = shared.externalAddresses
        for socket in relaySockets {
            let relay = Relay(socket: socket, externalAddresses: external, core: self)
            do {
                try loop.register(socket.fd, relay)
                relays.append(relay)
            } catch {
                socket.close()
            }
        }
        guard relays.first?.family == primaryIP.family else {
            for r in relays { closeRelay(r) }
            if let t = reserveToken, let r = shared.reservations.withLock({ $0.removeValue(forKey: t) }) { r.placeholder.close() }
            shared.releaseQuota(user: quotaUser)
            respondError(m, 508, "Insufficient Capacity", key: key, to: c)
            return
        }
        refreshClock()
        let state = AllocationState(policy: config.lifetimes, lifetimeSeconds: lifetime, now: now)
        let allocation = Allocation(key: c.key, client: c.socket, clientAddress: c.address, username: username, quotaUser: quotaUser, state: state, relays: relays, allocateTransaction: m.transactionID)
        if config.maxBitsPerSecond > 0 {
            allocation.bandwidth = TokenBucket(rate: Double(config.maxBitsPerSecond), burst: Double(config.maxBitsPerSecond) / 2, now: now)
        }
        for r in relays { r.allocation = allocation }
        allocations[c.key] = allocation
        shared.metrics.allocationsCreated.increment()
        var attributes: [STUNAttribute] = relays.map { .xorAddress(.xorRelayedAddress, $0.advertised, transactionID: m.transactionID) }
        if secondaryIP == nil, additionalFamily != nil {
            attributes.append(.addressErrorCode(family: .ipv6, code: 440, reason: "Address Family not Supported"))
        } else if secondaryIP != nil, relays.count < 2 {
            attributes.append(.addressErrorCode(family: .ipv6, code: 508, reason: "Insufficient Capacity"))
        }
        attributes.append(.uint32(.lifetime, UInt32(lifetime)))
        if let t = reserveToken { attributes.append(.uint64(.reservationToken, t)) }
        attributes.append(.xorAddress(.xorMappedAddress, c.address, transactionID: m.transactionID))
        allocation.allocateResponse = respond(m, attributes: attributes, key: key, to: c)
        logger.debug("allocation created", metadata: ["client": "\(c.address)", "relayed": "\(relays.map(\.relayed))", "user": "\(username)"])
    }

    // MARK: Refresh (RFC 8656 §7.3)

    func refresh(_ m: STUNMessage, from c: ClientContext) throws(STUNError) {
        guard let (key, username) = try authenticate(m, from: c) else { return }
        guard let a = existingAllocation(m, from: c, key: key, username: username) else { return }
        if let family = try m.addressFamily(.requestedAddressFamily), !a.families.contains(family) {
            respondError(m, 443, "Peer Address Family Mismatch", key: key, to: c)
            return
        }
        let requested = try m.lifetime
        if requested == 0 {
            delete(a, reason: .refreshZero)
            _ = respond(m, attributes: [.uint32(.lifetime, 0)], key: key, to: c)
            return
        }
        let lifetime = config.lifetimes.allocationLifetime(requested: requested)
        a.state.refresh(lifetimeSeconds: lifetime, now: now)
        _ = respond(m, attributes: [.uint32(.lifetime, UInt32(lifetime))], key: key, to: c)
    }

    // MARK: CreatePermission (RFC 8656 §9.2)

    func createPermission(_ m: STUNMessage, from c: ClientContext) throws(STUNError) {
        guard let (key, username) = try authenticate(m, from: c) else { return }
        guard let a = existingAllocation(m, from: c, key: key, username: username) else { return }
        let peers = try m.xorAddresses(.xorPeerAddress)
        guard !peers.isEmpty else {
            respondError(m, 400, "Bad Request: XOR-PEER-ADDRESS missing", key: key, to: c)
            return
        }
        for p in peers where !a.families.contains(p.ip.family) {
            respondError(m, 443, "Peer Address Family Mismatch", key: key, to: c)
            return
        }
        for p in peers where !shared.policy.permitsPermission(for: p.ip) {
            counters.dropForbiddenPeer += 1
            respondError(m, 403, "Forbidden", key: key, to: c)
            return
        }
        var added = 0
        for p in peers where a.state.installPermission(for: p.ip, now: now) { added += 1 }
        if added > 0 { shared.metrics.permissionCount.add(added, ordering: .relaxed) }
        _ = respond(m, attributes: [], key: key, to: c)
    }

    // MARK: ChannelBind (RFC 8656 §11.2)

    func channelBind(_ m: STUNMessage, from c: ClientContext) throws(STUNError) {
        guard let (key, username) = try authenticate(m, from: c) else { return }
        guard let a = existingAllocation(m, from: c, key: key, username: username) else { return }
        guard let number = try m.channelNumber, ChannelData.validNumbers.contains(number) else {
            respondError(m, 400, "Bad Request: CHANNEL-NUMBER missing or out of range", key: key, to: c)
            return
        }
        guard let peer = try m.xorAddress(.xorPeerAddress) else {
            respondError(m, 400, "Bad Request: XOR-PEER-ADDRESS missing", key: key, to: c)
            return
        }
        guard a.families.contains(peer.ip.family) else {
            respondError(m, 443, "Peer Address Family Mismatch", key: key, to: c)
            return
        }
        guard shared.policy.permits(peer) else {
            counters.dropForbiddenPeer += 1
            respondError(m, 403, "Forbidden", key: key, to: c)
            return
        }
        let hadPermission = a.state.permissions[peer.ip] != nil
        switch a.state.bindChannel(number, to: peer, now: now) {
        case .numberInUse:
            respondError(m, 400, "Bad Request: channel number bound to another peer", key: key, to: c)
            return
        case .peerInUse:
            respondError(m, 400, "Bad Request: peer bound to another channel", key: key, to: c)
            return
        case .bound:
            shared.metrics.channelCount.add(1, ordering: .relaxed)
        case .refreshed:
            break
        }
        if !hadPermission { shared.metrics.permissionCount.add(1, ordering: .relaxed) }
        _ = respond(m, attributes: [], key: key, to: c)
    }

    // MARK: Send indication (RFC 8656 §10.2)

    func sendIndication(_ m: STUNMessage, from c: ClientContext) {
        guard let a = allocations[c.key] else { counters.dropNoAllocation += 1; return }
        guard let peer = try? m.xorAddress(.xorPeerAddress), let data = m.attribute(.data),
              let relay = a.relay(for: peer.ip.family) else { counters.dropMalformed += 1; return }
        guard a.state.hasPermission(for: peer.ip, now: now) else { counters.dropNoPermission += 1; return }
        guard shared.policy.permits(peer) else { counters.dropForbiddenPeer += 1; return }
        if a.bandwidth != nil, !a.bandwidth!.take(Double(data.count) * 8, now: now) {
            counters.dropBandwidth += 1
            return
        }
        Array(data).withUnsafeBytes { relayToPeer($0, to: DatagramAddress(peer), relay: relay) }
    }
}
