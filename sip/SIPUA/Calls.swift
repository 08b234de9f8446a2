import Logging
import Metrics
import NIOCore
import SIP

/// One call of an extension (RFC 3261 §13–§15): an INVITE sent (outgoing) or received
/// (incoming), its dialog, the session descriptions both ways (opaque bytes: SDP is built
/// elsewhere), and the session timer (RFC 4028). Lives on the endpoint's loop; its owner
/// reacts to ``onEvent``.
public final class SIPCall: @unchecked Sendable {
    public enum Direction: String, Sendable { case incoming, outgoing }

    public enum State: Hashable, Sendable {
        case calling, early, confirmed
        case ended(reason: String)
    }

    public enum Event: Sendable {
        /// A provisional response (outgoing), with its body when it carries one (early media).
        case progress(statusCode: Int, body: [UInt8]?)
        /// The call is answered: the peer's session description (outgoing: from the 2xx;
        /// incoming: the offer of the INVITE, already known).
        case answered(body: [UInt8])
        /// A re-INVITE or UPDATE brought a new offer, answered with ``localBody`` once the
        /// handler returns (it may set it); or the answer to our re-INVITE came.
        case updated(body: [UInt8])
        /// An INFO in the dialog (DTMF as application/dtmf-relay, picture_fast_update, …).
        case info(SIPMessage)
        /// The call is over; `statusCode` is the final response that ended it, if one did.
        case ended(reason: String, statusCode: Int?)
    }

    public let direction: Direction
    /// The extension's user part.
    public let user: String
    /// The peer: the To URI of an outgoing call, the From of an incoming one.
    public let remoteURI: String
    public let callID: String
    public internal(set) var state: State = .calling
    /// Our session description, and its content type.
    public var localBody: [UInt8]
    public var localContentType: String
    /// The peer's last session description.
    public internal(set) var remoteBody: [UInt8]?
    public internal(set) var sessionTimer: SessionTimer?
    public var onEvent: (Event) -> Void = { _ in }

    var dialog: SIPDialog?
    /// Where requests outside the route set go: the platform side of the INVITE.
    var destination: SIPDestination
    /// Outgoing: the INVITE in progress (its CSeq and branch for CANCEL and ACK).
    var invite: SIPMessage?
    var provisionalSeen = false
    var cancelWhenProvisional = false
    var authenticated = false
    var digest: DigestClient?
    /// Incoming: the INVITE's server transaction until the final response.
    var serverTransaction: SIPServerTransactionID?
    var finalResponse: SIPMessage?
    var timers: [String: Scheduled<Void>] = [:]
    /// An INVITE of ours (re-INVITE) in progress: glare answers 491 (RFC 3261 §14.1).
    var reinviting = false
    weak var manager: SIPCallManager?

    init(direction: Direction, user: String, remoteURI: String, callID: String, localBody: [UInt8], localContentType: String, destination: SIPDestination) {
        self.direction = direction
        self.user = user
        self.remoteURI = remoteURI
        self.callID = callID
        self.localBody = localBody
        self.localContentType = localContentType
        self.destination = destination
    }

    public var isEnded: Bool { if case .ended = state { true } else { false } }
    public var dialogID: SIPDialogID? { dialog?.id }
}

/// The UA core of the extensions (RFC 3261 §8, §12–§15): places and takes calls over the
/// endpoint's transactions, keeps their dialogs, answers in-dialog requests (BYE, re-INVITE,
/// UPDATE, INFO, OPTIONS, PRACK) and out-of-dialog OPTIONS, sends PRACK for reliable
/// provisionals (RFC 3262), refreshes or polices session timers (RFC 4028, with 422
/// handling), follows early dialogs of forked INVITEs (the first 2xx wins; later ones are
/// ACKed and ended with BYE, §13.2.2.4), and answers 401/407 on any request it sends.
///
/// Runs on the endpoint's loop.
public final class SIPCallManager: @unchecked Sendable {
    public let endpoint: SIPEndpoint
    let logger: Logger
    /// The domain of From URIs (changed on the loop when the platform changes).
    public var domain: String
    /// Digest credentials of an extension (username, password), nil for an unknown one.
    public let credentials: (String) -> (username: String, password: String)?
    /// Where new calls of an extension go (the platform side it is registered on).
    public let route: (String) -> SIPDestination?
    /// A call came in for one of the extensions. The default rejects it (480).
    public var onIncomingCall: (SIPCall) -> Void = { $0.reject(480, "Temporarily Unavailable") }
    /// Session timer interval asked for (s).
    public var sessionInterval = SessionTimer.defaultInterval
    /// The smallest interval accepted from a caller (Min-SE, RFC 4028 §5; 90 s unless lowered,
    /// as tests do).
    public var minimumSessionInterval = SessionTimer.minimum

    private var calls: [SIPDialogID: SIPCall] = [:]
    /// Outgoing calls without a dialog yet, and incoming ones before their final response, by Call-ID.
    private var pending: [String: SIPCall] = [:]

    public init(endpoint: SIPEndpoint, domain: String, logger: Logger,
                credentials: @escaping (String) -> (username: String, password: String)?,
                route: @escaping (String) -> SIPDestination?) {
        self.endpoint = endpoint
        self.domain = domain
        self.logger = logger
        self.credentials = credentials
        self.route = route
    }

    /// Takes over the endpoint's requests, CANCELs and stray responses. Call on the loop.
    public func install() {
        endpoint.onRequest = { [unowned self] in self.receive($0) }
        endpoint.onCancel = { [unowned self] id, request in self.cancelled(id, request) }
        endpoint.onStrayResponse = { [unowned self] response, _ in self.stray(response) }
    }

    /// Calls in progress or established.
    public var activeCalls: Int { calls.values.filter { !$0.isEnded }.count + pending.count }

    // MARK: outgoing

    /// Places a call from extension `user` to `target` (a SIP URI) with `body` as the offer;
    /// `caller` replaces the user part of From (a caller id, for click-to-contact guests);
    /// `headers` are added to the INVITE (Require: 100rel, P-Asserted-Identity, …).
    @discardableResult
    public func call(from user: String, caller: String? = nil, to target: String, body: [UInt8], contentType: String = "application/sdp",
                     headers: [(String, String)] = []) -> SIPCall? {
        endpoint.loop.preconditionInEventLoop()
        guard let destination = route(user) else { return nil }
        let call = SIPCall(direction: .outgoing, user: user, remoteURI: target, callID: SIPEndpoint.newCallID(), localBody: body, localContentType: contentType, destination: destination)
        if let c = credentials(user) { call.digest = DigestClient(username: c.username, password: c.password) }
        call.manager = self
        var invite = SIPMessage(startLine: .request(method: .invite, requestURI: target))
        invite.headers.append("Via", endpoint.newVia(destination.transport))
        invite.headers.append("Max-Forwards", "70")
        invite.headers.append("From", "<sip:\(caller ?? user)@\(domain)>;tag=\(SIPEndpoint.newTag())")
        invite.headers.append("To", "<\(target)>")
        invite.headers.append("Call-ID", call.callID)
        invite.headers.append("CSeq", "1 INVITE")
        invite.headers.append("Contact", "<\(endpoint.contactURI(user: user, transport: destination.transport))>")
        invite.headers.append("Allow", SIPEndpoint.allow)
        invite.headers.append("Supported", "100rel, timer")
        invite.headers.append("Session-Expires", String(sessionInterval))
        invite.headers.append("Min-SE", String(minimumSessionInterval))
        for (name, value) in headers { invite.headers.append(name, value) }
        invite.headers.append("Content-Type", contentType)
        invite.body = body
        pending[call.callID] = call
        Counter(label: "tandem_sip_calls_total", dimensions: [("direction", "outgoing")]).increment()
        sendInvite(call, invite)
        return call
    }

    private func sendInvite(_ call: SIPCall, _ invite: SIPMessage) {
        call.invite = invite
        endpoint.send(invite, to: call.destination) { [weak self, weak call] event in
            guard let self, let call else { return }
            self.inviteEvent(call, invite, event)
        }
    }

    private func inviteEvent(_ call: SIPCall, _ invite: SIPMessage, _ event: SIPClientEvent) {
        guard case .response(let response) = event else {
            if case .timeout(let reason) = event, call.dialog?.state != .confirmed { end(call, reason: "INVITE: \(reason)", code: 408) }
            return
        }
        guard let code = response.statusCode else { return }
        switch code {
        case 100:
            return
        case 101...199:
            guard !call.isEnded else { return }
            call.provisionalSeen = true
            if call.cancelWhenProvisional {
                sendCancel(call)
                return
            }
            if call.dialog == nil, response.to?.tag != nil {
                call.dialog = SIPDialog(uac: invite, response: response, localContact: contact(call))
                call.state = .early
            }
            if response.lists("100rel"), let rseq = response.rseq, let cseq = invite.cseq, var dialog = call.dialog {
                // RFC 3262 §4: acknowledge the reliable provisional.
                var prack = dialog.request(.prack, via: endpoint.newVia(call.destination.transport))
                prack.headers.append("RAck", RAck(responseNumber: rseq, cseq: cseq).serialized)
                call.dialog = dialog
                sendInDialog(call, prack) { _ in }
            }
            if !response.body.isEmpty { call.remoteBody = response.body }
            call.onEvent(.progress(statusCode: code, body: response.body.isEmpty ? nil : response.body))
        case 200...299:
            answered(call, invite, response)
        case 401, 407:
            guard !call.authenticated || response.challenges.contains(where: \.stale), var digest = call.digest,
                  let challenge = DigestClient.choose(response.challenges) else {
                end(call, reason: "\(code) \(response.reasonPhrase)", code: code)
                return
            }
            call.authenticated = true
            var retry = invite
            retry.headers.set("Via", endpoint.newVia(call.destination.transport))
            retry.headers.set("CSeq", CSeq(sequence: (invite.cseq?.sequence ?? 1) + 1, method: .invite).serialized)
            if let value = digest.authorization(for: challenge, method: .invite, uri: invite.requestURI ?? "", cnonce: SIPEndpoint.randomToken()) {
                retry.headers.set(code == 407 ? "Proxy-Authorization" : "Authorization", value)
            }
            call.digest = digest
            sendInvite(call, retry)
        case 422:
            guard let minimum = response.minSE, minimum > (invite.sessionExpires?.interval ?? 0), minimum <= 86_400 else {
                end(call, reason: "422 without a usable Min-SE", code: 422)
                return
            }
            var retry = invite
            retry.headers.set("Via", endpoint.newVia(call.destination.transport))
            retry.headers.set("CSeq", CSeq(sequence: (invite.cseq?.sequence ?? 1) + 1, method: .invite).serialized)
            retry.headers.set("Session-Expires", String(minimum))
            retry.headers.set("Min-SE", String(minimum))
            sendInvite(call, retry)
        default:
            end(call, reason: "\(code) \(response.reasonPhrase)", code: code)
        }
    }

    /// A 2xx to our INVITE: the dialog is confirmed and ACKed (§13.2.2.4); another fork's 2xx
    /// is ACKed and ended.
    private func answered(_ call: SIPCall, _ invite: SIPMessage, _ response: SIPMessage) {
        guard let id = SIPDialogID(response: response) else { return }
        if let existing = calls[id] {
            ack(existing, response)  // a retransmitted 2xx: ACK again
            return
        }
        guard var dialog = SIPDialog(uac: invite, response: response, localContact: contact(call)) else { return }
        if let current = call.dialog, current.state == .confirmed {
            // A second fork answered: ACK it and hang it up.
            let fork = SIPCall(direction: .outgoing, user: call.user, remoteURI: call.remoteURI, callID: call.callID, localBody: call.localBody,
                               localContentType: call.localContentType, destination: call.destination)
            fork.dialog = dialog
            fork.invite = invite
            calls[id] = fork
            ack(fork, response)
            bye(fork, reason: "a second fork answered")
            return
        }
        dialog.confirm(with: response)
        if let early = call.dialog { dialog.continueSequence(after: early) }
        call.dialog = dialog
        call.state = .confirmed
        pending[call.callID] = nil
        calls[id] = call
        if !response.body.isEmpty { call.remoteBody = response.body }
        ack(call, response)
        if call.cancelWhenProvisional {
            bye(call, reason: "hung up while calling")
            return
        }
        startSessionTimer(call, from: response, weAreUAC: true)
        logger.info("Call answered", metadata: ["extension": "\(call.user)", "call-id": "\(call.callID)", "direction": "outgoing"])
        call.onEvent(.answered(body: call.remoteBody ?? []))
    }

    private func ack(_ call: SIPCall, _ response: SIPMessage) {
        guard let invite = call.invite else { return }
        sendACK(call, for: invite, to: nextHop(call))
    }

    /// The ACK of a 2xx to `request`, an INVITE or re-INVITE (RFC 3261 §13.2.2.4): in the
    /// dialog, with the request's CSeq number and its credentials.
    private func sendACK(_ call: SIPCall, for request: SIPMessage, to destination: SIPDestination) {
        guard var dialog = call.dialog, let cseq = request.cseq else { return }
        var ack = dialog.request(.ack, via: endpoint.newVia(destination.transport), cseq: cseq.sequence)
        for name in ["Authorization", "Proxy-Authorization"] { if let value = request.headers.first(name) { ack.headers.append(name, value) } }
        call.dialog = dialog
        endpoint.sendStateless(ack, to: destination)
    }

    /// Ends the call: BYE when confirmed; CANCEL while calling (once a provisional came,
    /// §9.1); the final response when it is ringing here.
    public func hangUp(_ call: SIPCall) {
        endpoint.loop.preconditionInEventLoop()
        guard !call.isEnded else { return }
        switch (call.direction, call.state) {
        case (_, .confirmed):
            bye(call, reason: "local hangup")
        case (.outgoing, _):
            if call.provisionalSeen { sendCancel(call) } else { call.cancelWhenProvisional = true }
        case (.incoming, _):
            call.reject(480, "Temporarily Unavailable")
        }
    }

    private func sendCancel(_ call: SIPCall) {
        guard let cancel = call.invite?.cancelRequest() else { return }
        call.cancelWhenProvisional = false
        endpoint.send(cancel, to: call.destination) { _ in }
        // The INVITE's 487 ends the call; should it not come, Timer B/C still ends it.
    }

    private func bye(_ call: SIPCall, reason: String) {
        guard var dialog = call.dialog else { return end(call, reason: reason, code: nil) }
        let bye = dialog.request(.bye, via: endpoint.newVia(nextHop(call).transport))
        call.dialog = dialog
        end(call, reason: reason, code: nil)
        sendInDialog(call, bye) { _ in }
    }

    /// Sends an in-dialog request to the dialog's next hop, answering one 401/407.
    func sendInDialog(_ call: SIPCall, _ request: SIPMessage, retried: Bool = false, completion: @escaping (SIPMessage?) -> Void) {
        let destination = nextHop(call)
        endpoint.send(request, to: destination) { [weak self, weak call] event in
            guard let self, let call else { return }
            switch event {
            case .response(let response):
                guard let code = response.statusCode, code >= 200 else { return }
                if (code == 401 || code == 407), !retried, var dialog = call.dialog, var digest = call.digest ?? self.credentials(call.user).map({ DigestClient(username: $0.username, password: $0.password) }),
                   let challenge = DigestClient.choose(response.challenges), let method = request.method {
                    var retry = dialog.request(method, via: self.endpoint.newVia(destination.transport))
                    for field in request.headers where !["Via", "CSeq", "From", "To", "Call-ID", "Max-Forwards", "Route", "Contact"].contains(field.canonicalName) {
                        retry.headers.append(field.name, field.value)
                    }
                    retry.body = request.body
                    if let value = digest.authorization(for: challenge, method: method, uri: retry.requestURI ?? "", cnonce: SIPEndpoint.randomToken()) {
                        retry.headers.set(code == 407 ? "Proxy-Authorization" : "Authorization", value)
                    }
                    call.digest = digest
                    call.dialog = dialog
                    self.sendInDialog(call, retry, retried: true, completion: completion)
                    return
                }
                completion(response)
            case .timeout:
                completion(nil)
            }
        }
    }

    /// Where in-dialog requests go: the first route or the remote target when its host is an
    /// address, with its `transport`; else the platform side of the call.
    func nextHop(_ call: SIPCall) -> SIPDestination {
        guard let uri = call.dialog?.nextHop else { return call.destination }
        let transport = uri.parameter("transport").flatMap { SIPTransport(rawValue: $0.lowercased()) } ?? (uri.secure ? .tls : call.destination.transport)
        guard let address = try? SocketAddress(ipAddress: uri.bareHost, port: uri.port ?? transport.defaultPort) else { return call.destination }
        return SIPDestination(transport: transport, address: address, serverName: call.destination.serverName)
    }

    private func contact(_ call: SIPCall) -> String { endpoint.contactURI(user: call.user, transport: call.destination.transport) }

    // MARK: incoming

    private func receive(_ incoming: SIPIncomingRequest) {
        let request = incoming.message
        guard let method = request.method else { return }
        if request.to?.tag != nil || method == .ack {
            inDialog(incoming)
            return
        }
        guard let id = incoming.transaction else { return }
        switch method {
        case .invite:
            incomingInvite(incoming, id)
        case .options:
            var response = request.response(statusCode: 200, reasonPhrase: "OK", toTag: SIPEndpoint.newTag())
            response.headers.append("Allow", SIPEndpoint.allow)
            response.headers.append("Supported", "100rel, timer")
            response.headers.append("Accept", "application/sdp")
            endpoint.respond(response, to: id)
        case .bye, .update, .info, .prack:
            endpoint.respond(481, "Call/Transaction Does Not Exist", to: id)
        default:
            var response = request.response(statusCode: 405, reasonPhrase: "Method Not Allowed")
            response.headers.append("Allow", SIPEndpoint.allow)
            endpoint.respond(response, to: id)
        }
    }

    private func incomingInvite(_ incoming: SIPIncomingRequest, _ id: SIPServerTransactionID) {
        let request = incoming.message
        let user = request.requestURI.flatMap(SIPURI.init)?.user ?? request.to.flatMap { SIPURI($0.uri) }?.user ?? ""
        guard credentials(user) != nil else {
            endpoint.respond(404, "Not Found", to: id)
            return
        }
        let unsupported = request.require.filter { !["100rel", "timer"].contains($0) }
        guard unsupported.isEmpty else {
            var response = request.response(statusCode: 420, reasonPhrase: "Bad Extension")
            response.headers.append("Unsupported", unsupported.joined(separator: ", "))
            endpoint.respond(response, to: id)
            return
        }
        if let asked = request.sessionExpires, asked.interval < minimumSessionInterval {
            var response = request.response(statusCode: 422, reasonPhrase: "Session Interval Too Small")
            response.headers.append("Min-SE", String(minimumSessionInterval))
            endpoint.respond(response, to: id)
            return
        }
        let transport = incoming.source.transport
        let call = SIPCall(direction: .incoming, user: user, remoteURI: request.from?.uri ?? "", callID: request.callID ?? "", localBody: [],
                           localContentType: "application/sdp", destination: incoming.source)
        let localContact = endpoint.contactURI(user: user, transport: transport)
        guard let dialog = SIPDialog(uas: request, localTag: SIPEndpoint.newTag(), localContact: localContact) else {
            endpoint.respond(400, "Missing dialog fields", to: id)
            return
        }
        call.dialog = dialog
        call.serverTransaction = id
        call.remoteBody = request.body.isEmpty ? nil : request.body
        call.manager = self
        call.invite = request
        calls[dialog.id] = call
        Counter(label: "tandem_sip_calls_total", dimensions: [("direction", "incoming")]).increment()
        logger.info("Incoming call", metadata: ["extension": "\(user)", "from": "\(call.remoteURI)", "call-id": "\(call.callID)"])
        onIncomingCall(call)
    }

    private func cancelled(_ id: SIPServerTransactionID, _ cancel: SIPMessage) {
        guard let call = calls.values.first(where: { $0.serverTransaction == id }) else {
            endpoint.respond(487, "Request Terminated", to: id)
            return
        }
        respondFinal(call, 487, "Request Terminated")
        end(call, reason: "cancelled by the caller", code: 487)
    }

    private func inDialog(_ incoming: SIPIncomingRequest) {
        let request = incoming.message
        guard let method = request.method else { return }
        guard let dialogID = SIPDialogID(incoming: request), let call = calls[dialogID], var dialog = call.dialog else {
            if let id = incoming.transaction { endpoint.respond(481, "Call/Transaction Does Not Exist", to: id) }
            return
        }
        guard dialog.receive(request) else {
            if let id = incoming.transaction { endpoint.respond(500, "CSeq Out of Order", to: id) }
            return
        }
        call.dialog = dialog
        guard let id = incoming.transaction else {
            // The ACK of our 2xx: the dialog is confirmed.
            if method == .ack, call.direction == .incoming, call.state != .confirmed, !call.isEnded {
                call.timers.removeValue(forKey: "2xx")?.cancel()
                call.timers.removeValue(forKey: "ack-timeout")?.cancel()
                call.state = .confirmed
                call.dialog?.confirm()
                if !request.body.isEmpty { call.remoteBody = request.body }
                call.onEvent(.answered(body: call.remoteBody ?? []))
            }
            return
        }
        switch method {
        case .bye:
            endpoint.respond(200, "OK", to: id)
            end(call, reason: "remote hangup", code: nil)
        case .invite, .update:
            if method == .invite, call.reinviting {
                endpoint.respond(491, "Request Pending", to: id)
                return
            }
            if !request.body.isEmpty {
                call.remoteBody = request.body
                // The owner may set `localBody` to its answer (hold: recvonly) before it goes out.
                call.onEvent(.updated(body: request.body))
            }
            var response = request.response(statusCode: 200, reasonPhrase: "OK")
            response.headers.append("Contact", "<\(dialog.localContact)>")
            response.headers.append("Allow", SIPEndpoint.allow)
            if let timer = SessionTimer.forAnswer(to: request, minimum: minimumSessionInterval) {
                call.sessionTimer = timer
                response.headers.append("Session-Expires", timer.headerValue)
                response.headers.append("Require", "timer")
            }
            if method == .invite || !request.body.isEmpty {
                response.headers.append("Content-Type", call.localContentType)
                response.body = call.localBody
            }
            endpoint.respond(response, to: id)
            restartSessionTimer(call)
        case .info:
            endpoint.respond(200, "OK", to: id)
            call.onEvent(.info(request))
        case .prack:
            call.timers.removeValue(forKey: "100rel")?.cancel()
            endpoint.respond(200, "OK", to: id)
        case .options:
            var response = request.response(statusCode: 200, reasonPhrase: "OK")
            response.headers.append("Allow", SIPEndpoint.allow)
            endpoint.respond(response, to: id)
        default:
            var response = request.response(statusCode: 405, reasonPhrase: "Method Not Allowed")
            response.headers.append("Allow", SIPEndpoint.allow)
            endpoint.respond(response, to: id)
        }
    }

    private func stray(_ response: SIPMessage) {
        // A 2xx retransmitted after the INVITE transaction ended: ACK it again.
        guard response.method == .invite, let code = response.statusCode, (200...299).contains(code),
              let id = SIPDialogID(response: response), let call = calls[id] else { return }
        ack(call, response)
    }

    // MARK: answering (incoming)

    /// 180 Ringing (reliable, RFC 3262, when the INVITE requires 100rel).
    func ring(_ call: SIPCall) {
        guard let id = call.serverTransaction, let invite = call.invite, let dialog = call.dialog else { return }
        var response = dialogResponse(invite, 180, "Ringing", dialog)
        if invite.lists("100rel") {
            response.headers.append("Require", "100rel")
            response.headers.append("RSeq", "1")
            let t1 = endpoint.configuration.timers.t1
            retransmit(call, response, timer: "100rel", interval: t1, limit: 64 * t1) { $0.finalResponse == nil }
        }
        endpoint.respond(response, to: id)
    }

    /// A response that creates the dialog (18x, 2xx): our tag and Contact, and the request's
    /// Record-Route copied in order (RFC 3261 §12.1.1).
    private func dialogResponse(_ invite: SIPMessage, _ code: Int, _ reason: String, _ dialog: SIPDialog) -> SIPMessage {
        var response = invite.response(statusCode: code, reasonPhrase: reason, toTag: dialog.id.localTag)
        for route in invite.headers.values("Record-Route") { response.headers.append("Record-Route", route) }
        response.headers.append("Contact", "<\(dialog.localContact)>")
        return response
    }

    /// Sends `response` again on the INVITE's server transaction after `interval`, doubling up
    /// to `cap`, while `pending(call)` holds and (with a `limit`) until `limit` ms have passed:
    /// a reliable provisional until its PRACK (RFC 3262 §3, T1 doubling, for 64·T1), the 2xx
    /// until its ACK (RFC 3261 §13.3.1.4, capped at T2).
    private func retransmit(_ call: SIPCall, _ response: SIPMessage, timer: String, interval: Int64, elapsed: Int64 = 0,
                            cap: Int64 = .max, limit: Int64 = .max, while pending: @escaping @Sendable (SIPCall) -> Bool) {
        guard elapsed + interval < limit else { return }
        call.timers[timer] = endpoint.loop.scheduleTask(in: .milliseconds(interval)) { [weak self, weak call] in
            guard let self, let call, let id = call.serverTransaction, pending(call) else { return }
            self.endpoint.respond(response, to: id)
            self.retransmit(call, response, timer: timer, interval: min(interval * 2, cap), elapsed: elapsed + interval, cap: cap, limit: limit, while: pending)
        }
    }

    /// 200 OK with `body` (RFC 3261 §13.3.1.4), retransmitted until the ACK comes (at most 64·T1).
    func accept(_ call: SIPCall, body: [UInt8], contentType: String) {
        guard let invite = call.invite, let dialog = call.dialog, call.finalResponse == nil else { return }
        call.localBody = body
        call.localContentType = contentType
        var response = dialogResponse(invite, 200, "OK", dialog)
        response.headers.append("Allow", SIPEndpoint.allow)
        response.headers.append("Supported", "timer")
        if let timer = SessionTimer.forAnswer(to: invite, minimum: minimumSessionInterval) {
            call.sessionTimer = timer
            response.headers.append("Session-Expires", timer.headerValue)
            if invite.lists("timer", inSupported: true) { response.headers.append("Require", "timer") }
        }
        response.headers.append("Content-Type", contentType)
        response.body = body
        call.finalResponse = response
        call.timers.removeValue(forKey: "100rel")?.cancel()
        guard let id = call.serverTransaction else { return }
        endpoint.respond(response, to: id)
        let timers = endpoint.configuration.timers
        retransmit(call, response, timer: "2xx", interval: timers.t1, cap: timers.t2) { $0.state != .confirmed && !$0.isEnded }
        let t1 = endpoint.configuration.timers.t1
        call.timers["ack-timeout"] = endpoint.loop.scheduleTask(in: .milliseconds(64 * t1)) { [weak self, weak call] in
            guard let self, let call, call.state != .confirmed, !call.isEnded else { return }
            self.bye(call, reason: "no ACK for the 2xx")
        }
        restartSessionTimer(call)
        logger.info("Call answered", metadata: ["extension": "\(call.user)", "call-id": "\(call.callID)", "direction": "incoming"])
    }

    func respondFinal(_ call: SIPCall, _ code: Int, _ reason: String) {
        guard let invite = call.invite, let id = call.serverTransaction, call.finalResponse == nil else { return }
        let response = invite.response(statusCode: code, reasonPhrase: reason, toTag: call.dialog?.id.localTag)
        call.finalResponse = response
        call.timers.removeValue(forKey: "100rel")?.cancel()
        endpoint.respond(response, to: id)
    }

    func reject(_ call: SIPCall, _ code: Int, _ reason: String) {
        respondFinal(call, code, reason)
        end(call, reason: "rejected: \(code) \(reason)", code: code)
    }

    // MARK: session timers (RFC 4028)

    private func startSessionTimer(_ call: SIPCall, from response: SIPMessage, weAreUAC: Bool) {
        guard let timer = response.sessionExpires else { return }
        call.sessionTimer = timer
        restartSessionTimer(call)
    }

    /// After each refresh: the refresher refreshes at half the interval; the other side ends
    /// the call when no refresh came in time.
    private func restartSessionTimer(_ call: SIPCall) {
        call.timers.removeValue(forKey: "session")?.cancel()
        guard let timer = call.sessionTimer else { return }
        let weRefresh = (timer.refresher == .uac) == (call.direction == .outgoing)
        let seconds = weRefresh ? timer.refreshAfter : timer.expiryWithoutRefresh
        call.timers["session"] = endpoint.loop.scheduleTask(in: .seconds(Int64(seconds))) { [weak self, weak call] in
            guard let self, let call, !call.isEnded else { return }
            if weRefresh { self.refresh(call) } else { self.bye(call, reason: "session timer expired") }
        }
    }

    /// A session refresh: re-INVITE with the same session description (RFC 4028 §7.4).
    private func refresh(_ call: SIPCall) { reinvite(call, body: nil) }

    /// A re-INVITE (RFC 3261 §14) with `body` as the new offer (hold, resume, video), or the
    /// current one for a session refresh; its 2xx is ACKed and refreshes the session timer.
    /// A 491 (glare) is retried once after a random 2.1–4 s (§14.1).
    func reinvite(_ call: SIPCall, body: [UInt8]?, glareRetry: Bool = true) {
        guard var dialog = call.dialog, call.state == .confirmed, !call.reinviting else { return }
        if let body { call.localBody = body }
        var reinvite = dialog.request(.invite, via: endpoint.newVia(nextHop(call).transport))
        reinvite.headers.append("Allow", SIPEndpoint.allow)
        reinvite.headers.append("Supported", "timer")
        if let timer = call.sessionTimer {
            reinvite.headers.append("Session-Expires", SessionTimer(interval: timer.interval, refresher: call.direction == .outgoing ? .uac : .uas).headerValue)
        }
        reinvite.headers.append("Content-Type", call.localContentType)
        reinvite.body = call.localBody
        call.dialog = dialog
        call.reinviting = true
        let destination = nextHop(call)
        endpoint.send(reinvite, to: destination) { [weak self, weak call] event in
            guard let self, let call else { return }
            switch event {
            case .response(let response):
                guard let code = response.statusCode, code >= 200 else { return }
                guard call.reinviting else {
                    if (200...299).contains(code) { self.sendACK(call, for: reinvite, to: destination) }  // a retransmitted 2xx
                    return
                }
                call.reinviting = false
                if (200...299).contains(code) {
                    self.sendACK(call, for: reinvite, to: destination)
                    if let t = response.sessionExpires { call.sessionTimer = t }
                    if let contact = response.contacts.first?.uri { call.dialog?.remoteTarget = contact }
                    self.restartSessionTimer(call)
                    if body != nil, !response.body.isEmpty {
                        call.remoteBody = response.body
                        call.onEvent(.updated(body: response.body))
                    }
                } else if code == 481 || code == 408 {
                    self.end(call, reason: "re-INVITE: \(code)", code: code)
                } else if code == 491, glareRetry {
                    let wait = Int64.random(in: 2100...4000)
                    call.timers["glare"] = self.endpoint.loop.scheduleTask(in: .milliseconds(wait)) { [weak self, weak call] in
                        guard let self, let call else { return }
                        self.reinvite(call, body: body, glareRetry: false)
                    }
                } else {
                    self.restartSessionTimer(call)  // refused: the session stays as it was (RFC 4028 §10)
                }
            case .timeout:
                call.reinviting = false
                self.bye(call, reason: "re-INVITE timed out")
            }
        }
    }

    /// Sends an INFO in the call's dialog.
    func info(_ call: SIPCall, body: [UInt8], contentType: String) {
        guard var dialog = call.dialog, call.state == .confirmed else { return }
        var info = dialog.request(.info, via: endpoint.newVia(nextHop(call).transport))
        info.headers.append("Content-Type", contentType)
        info.body = body
        call.dialog = dialog
        sendInDialog(call, info) { _ in }
    }

    // MARK: ending

    private func end(_ call: SIPCall, reason: String, code: Int?) {
        guard !call.isEnded else { return }
        call.state = .ended(reason: reason)
        for timer in call.timers.values { timer.cancel() }
        call.timers = [:]
        pending[call.callID] = nil
        // Keep the dialog a little for retransmitted BYEs and 2xx, then forget it.
        if let id = call.dialogID {
            endpoint.loop.scheduleTask(in: .milliseconds(32 * endpoint.configuration.timers.t1)) { [weak self] in
                self?.calls[id] = nil
            }
        }
        Counter(label: "tandem_sip_calls_ended_total", dimensions: [("direction", call.direction.rawValue)]).increment()
        logger.info("Call ended", metadata: ["extension": "\(call.user)", "call-id": "\(call.callID)", "reason": "\(reason)"])
        call.onEvent(.ended(reason: reason, statusCode: code))
    }
}

extension SIPCall {
    /// Answers an incoming call with `body` (its session description).
    public func accept(body: [UInt8], contentType: String = "application/sdp") { manager?.accept(self, body: body, contentType: contentType) }
    /// 180 Ringing for an incoming call.
    public func ring() { manager?.ring(self) }
    /// Refuses an incoming call.
    public func reject(_ code: Int, _ reason: String) { manager?.reject(self, code, reason) }
    /// Ends the call whatever its state.
    public func hangUp() { manager?.hangUp(self) }
    /// Sends a re-INVITE with a new offer (hold, resume, adding video); the answer comes as
    /// ``Event/updated(body:)``.
    public func update(body: [UInt8]) { manager?.reinvite(self, body: body) }
    /// Sends an INFO (RFC 6086) in the established dialog.
    public func sendInfo(body: [UInt8], contentType: String) { manager?.info(self, body: body, contentType: contentType) }
}
