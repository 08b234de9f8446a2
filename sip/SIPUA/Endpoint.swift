import Logging
import Metrics
import NIOCore
import NIOSSL
import SIP

/// What an endpoint listens on and says about itself.
public struct SIPEndpointConfiguration: Sendable {
    public var listen: [SIPListenAddress]
    /// The host put in Via sent-by and in Contact: an address (or name) the platform reaches
    /// this node at.
    public var advertisedHost: String
    public var timers: SIPTimerValues
    public var limits: SIPLimits
    /// The certificate served on TLS listen addresses.
    public var serverTLS: NIOSSLContext?
    /// How TLS connections to peers are made (trust roots, verification).
    public var clientTLS: NIOSSLContext?
    /// The User-Agent and Server header value.
    public var userAgent: String

    public init(listen: [SIPListenAddress], advertisedHost: String, timers: SIPTimerValues = SIPTimerValues(), limits: SIPLimits = SIPLimits(),
                serverTLS: NIOSSLContext? = nil, clientTLS: NIOSSLContext? = nil, userAgent: String = "Tandem") {
        self.listen = listen
        self.advertisedHost = advertisedHost
        self.timers = timers
        self.limits = limits
        self.serverTLS = serverTLS
        self.clientTLS = clientTLS
        self.userAgent = userAgent
    }
}

/// What a client transaction tells its transaction user.
public enum SIPClientEvent: Sendable {
    /// A response: provisional, final, or a retransmitted 2xx of an INVITE.
    case response(SIPMessage)
    /// No final response (Timer B or F), or the transport failed (RFC 3261 §17.1.4); the TU
    /// acts as on a 408.
    case timeout(reason: String)
}

/// A server transaction, for the TU to respond on.
public struct SIPServerTransactionID: Hashable, Sendable {
    let key: SIPTransactionKey
}

/// A request handed to the TU: with its server transaction, except for an ACK to a 2xx
/// (RFC 3261 §17.2.1: that ACK is the dialog's, not a transaction's).
public struct SIPIncomingRequest: Sendable {
    public let message: SIPMessage
    public let source: SIPDestination
    public let transaction: SIPServerTransactionID?
}

/// A SIP endpoint (RFC 3261 §17, §18): the transports and the transaction layer below the
/// transaction users (registration, dialogs). Client transactions retransmit and time out on
/// the loop's timers; server transactions absorb retransmitted requests; a CANCEL is answered
/// and handed on; a request that does not parse or validate gets `400` (or `505`) and a
/// malformed response is dropped, both counted.
///
/// Everything runs on ``loop``: call the methods from it (`loop.execute`), and the handlers
/// are called on it.
public final class SIPEndpoint: @unchecked Sendable {
    public let loop: any EventLoop
    public let configuration: SIPEndpointConfiguration
    let logger: Logger
    private let transports: SIPTransportLayer
    private let metrics = SIPMetrics()

    /// New requests (and ACKs to 2xx). The default answers OPTIONS with 200 and anything
    /// else but ACK with 501.
    public var onRequest: (SIPIncomingRequest) -> Void
    /// A CANCEL matched an INVITE still without a final response; the 200 to the CANCEL is
    /// sent. The TU answers the INVITE (487 Request Terminated, RFC 3261 §9.2); the default does.
    public var onCancel: (SIPServerTransactionID, SIPMessage) -> Void
    /// A response that matched no client transaction (a retransmitted 2xx of an INVITE whose
    /// transaction ended: the dialog ACKs it again).
    public var onStrayResponse: (SIPMessage, SIPDestination) -> Void = { _, _ in }

    private struct ClientEntry {
        var machine: any ClientTransactionMachine
        let destination: SIPDestination
        let handler: (SIPClientEvent) -> Void
        var failure: String?
    }

    private struct ServerEntry {
        var machine: any ServerTransactionMachine
        let destination: SIPDestination
    }

    private enum Side: Hashable { case client, server }

    private struct TimerKey: Hashable {
        var side: Side
        var key: SIPTransactionKey
        var timer: SIPTransactionTimer
    }

    private var clients: [SIPTransactionKey: ClientEntry] = [:]
    private var servers: [SIPTransactionKey: ServerEntry] = [:]
    private var timers: [TimerKey: Scheduled<Void>] = [:]

    public init(configuration: SIPEndpointConfiguration, loop: any EventLoop, logger: Logger) {
        self.loop = loop
        self.configuration = configuration
        self.logger = logger
        transports = SIPTransportLayer(loop: loop, limits: configuration.limits, serverTLS: configuration.serverTLS, clientTLS: configuration.clientTLS, logger: logger)
        onRequest = { _ in }
        onCancel = { _, _ in }
        onRequest = { [unowned self] in self.defaultRequestHandler($0) }
        onCancel = { [unowned self] id, _ in self.respond(487, "Request Terminated", to: id) }
        transports.onInput = { [unowned self] input, source in self.input(input, from: source) }
        transports.onStreamError = { [unowned self] error, source in
            metrics.parseErrors(.stream)
            self.logger.notice("Closed a SIP stream that could not be framed", metadata: ["peer": "\(source)", "error": "\(error)"])
        }
    }

    /// Binds the listen addresses.
    public func start() async throws {
        try await transports.start(configuration.listen)
        let bound = try await loop.submit { self.transports.boundAddresses }.get()
        logger.info("SIP listening", metadata: ["addresses": "\(bound.map { "\($0.transport.rawValue):\(HostPort.format(host: $0.host, port: $0.port))" })"])
    }

    /// Ends every transaction and closes the sockets.
    public func stop() async {
        try? await loop.submit {
            for timer in self.timers.values { timer.cancel() }
            self.timers = [:]
            self.clients = [:]
            self.servers = [:]
        }.get()
        await transports.stop()
    }

    /// The port bound for `transport`, once started.
    public func port(of transport: SIPTransport) -> Int? { transports.port(of: transport) }

    /// Listen addresses as bound (ports chosen by the system filled in).
    public var boundAddresses: [SIPListenAddress] {
        get async { (try? await loop.submit { self.transports.boundAddresses }.get()) ?? [] }
    }

    /// Client and server transactions in progress.
    public var transactionCount: Int { clients.count + servers.count }

    // MARK: building requests

    /// `host:port` this endpoint says it sends from over `transport` (Via sent-by, Contact).
    public func sentBy(_ transport: SIPTransport) -> String {
        HostPort.format(host: configuration.advertisedHost, port: port(of: transport) ?? port(of: .udp) ?? transport.defaultPort)
    }

    /// A top Via for a new request over `transport`, with a fresh branch and `rport` (RFC 3581 §3).
    public func newVia(_ transport: SIPTransport) -> String {
        "SIP/2.0/\(transport.viaToken) \(sentBy(transport));branch=\(Self.newBranch());rport"
    }

    /// The Contact URI of `user` here, over `transport`.
    public func contactURI(user: String, transport: SIPTransport) -> String {
        "sip:\(user)@\(sentBy(transport))" + (transport == .udp ? "" : ";transport=\(transport.rawValue)")
    }

    /// A branch with RFC 3261's magic cookie (§8.1.1.7).
    public static func newBranch() -> String { "z9hG4bK" + randomToken() }
    /// A From or To tag (§19.3).
    public static func newTag() -> String { randomToken() }
    /// A Call-ID (§8.1.1.4).
    public static func newCallID() -> String { randomToken() + randomToken() }

    static func randomToken() -> String { String(UInt64.random(in: .min ... .max), radix: 36) }

    // MARK: client transactions

    /// Sends `request` in a new client transaction (RFC 3261 §17.1) to `destination`.
    /// The handler gets each response and, when no final response comes, one timeout.
    /// ACK is not sent this way (``sendStateless(_:to:)``).
    public func send(_ request: SIPMessage, to destination: SIPDestination, handler: @escaping (SIPClientEvent) -> Void) {
        loop.preconditionInEventLoop()
        guard let key = SIPTransactionKey(request), let method = request.method, method != .ack else {
            handler(.timeout(reason: "request without a Via branch"))
            return
        }
        let reliable = destination.transport.isReliable
        let machine: any ClientTransactionMachine = method == .invite
            ? InviteClientTransaction(request: request, reliable: reliable, timers: configuration.timers)
            : NonInviteClientTransaction(request: request, reliable: reliable, timers: configuration.timers)
        let actions = machine.start()
        clients[key] = ClientEntry(machine: machine, destination: destination, handler: handler)
        metrics.transaction(.client, method)
        runClient(key, actions, retransmission: false)
    }

    /// Sends a message outside any transaction: the ACK to a 2xx, a UAS's 2xx retransmission.
    public func sendStateless(_ message: SIPMessage, to destination: SIPDestination) {
        loop.preconditionInEventLoop()
        transmit(message, to: destination) { _ in }
    }

    private func runClient(_ key: SIPTransactionKey, _ actions: [SIPTransactionAction], retransmission: Bool) {
        for action in actions {
            guard let entry = clients[key] else { return }
            switch action {
            case .send(let message):
                if retransmission { metrics.retransmission(.client) }
                transmit(message, to: entry.destination) { [weak self] error in
                    guard let self, let error else { return }
                    self.clientTransportFailed(key, error)
                }
            case .deliver(let response):
                entry.handler(.response(response))
            case .start(let timer, let milliseconds):
                schedule(TimerKey(side: .client, key: key, timer: timer), milliseconds)
            case .cancel(let timer):
                timers.removeValue(forKey: TimerKey(side: .client, key: key, timer: timer))?.cancel()
            case .timedOut:
                metrics.timeout()
                entry.handler(.timeout(reason: entry.failure ?? "no response"))
            case .terminated:
                clients[key] = nil
                cancelTimers(.client, key)
            }
        }
    }

    private func clientTransportFailed(_ key: SIPTransactionKey, _ error: SIPTransportError) {
        guard var entry = clients[key] else { return }
        entry.failure = error.description
        let actions = entry.machine.transportError()
        clients[key] = entry
        runClient(key, actions, retransmission: false)
    }

    // MARK: server transactions

    /// Responds on a server transaction (the 100 Trying of an INVITE is already sent).
    public func respond(_ response: SIPMessage, to id: SIPServerTransactionID) {
        loop.preconditionInEventLoop()
        guard var entry = servers[id.key] else { return }
        var response = response
        if response.headers.first("Server") == nil { response.headers.append("Server", configuration.userAgent) }
        let actions = entry.machine.respond(response)
        servers[id.key] = entry
        runServer(id.key, actions, retransmission: false)
    }

    /// Responds with `code` and `reason`, copying the request's fields (RFC 3261 §8.2.6).
    public func respond(_ code: Int, _ reason: String, toTag: String? = nil, to id: SIPServerTransactionID) {
        guard let request = request(of: id) else { return }
        respond(request.response(statusCode: code, reasonPhrase: reason, toTag: toTag), to: id)
    }

    /// The request of a server transaction still alive.
    public func request(of id: SIPServerTransactionID) -> SIPMessage? {
        servers[id.key]?.machine.request
    }

    private func runServer(_ key: SIPTransactionKey, _ actions: [SIPTransactionAction], retransmission: Bool) {
        for action in actions {
            guard let entry = servers[key] else { return }
            switch action {
            case .send(let message):
                if retransmission { metrics.retransmission(.server) }
                transmit(message, to: entry.destination) { _ in }
            case .deliver(let request):
                onRequest(SIPIncomingRequest(message: request, source: entry.destination, transaction: SIPServerTransactionID(key: key)))
            case .start(let timer, let milliseconds):
                schedule(TimerKey(side: .server, key: key, timer: timer), milliseconds)
            case .cancel(let timer):
                timers.removeValue(forKey: TimerKey(side: .server, key: key, timer: timer))?.cancel()
            case .timedOut:
                metrics.timeout()  // no ACK came for a non-2xx final (Timer H)
            case .terminated:
                servers[key] = nil
                cancelTimers(.server, key)
            }
        }
    }

    // MARK: timers

    private func schedule(_ timerKey: TimerKey, _ milliseconds: Int64) {
        timers.removeValue(forKey: timerKey)?.cancel()
        timers[timerKey] = loop.scheduleTask(in: .milliseconds(milliseconds)) { [weak self] in
            self?.fire(timerKey)
        }
    }

    private func fire(_ timerKey: TimerKey) {
        timers[timerKey] = nil
        let key = timerKey.key
        switch timerKey.side {
        case .client:
            guard var entry = clients[key] else { return }
            let actions = entry.machine.fire(timerKey.timer)
            clients[key] = entry
            runClient(key, actions, retransmission: true)
        case .server:
            guard var entry = servers[key] else { return }
            let actions = entry.machine.fire(timerKey.timer)
            servers[key] = entry
            runServer(key, actions, retransmission: true)
        }
    }

    private func cancelTimers(_ side: Side, _ key: SIPTransactionKey) {
        for timer in [SIPTransactionTimer.a, .b, .d, .e, .f, .g, .h, .i, .j, .k, .l, .m] {
            timers.removeValue(forKey: TimerKey(side: side, key: key, timer: timer))?.cancel()
        }
    }

    // MARK: sending and receiving

    private func transmit(_ message: SIPMessage, to destination: SIPDestination, completion: @escaping (SIPTransportError?) -> Void) {
        var message = message
        if message.isRequest, message.headers.first("User-Agent") == nil { message.headers.append("User-Agent", configuration.userAgent) }
        if let code = message.statusCode { metrics.response(code, sent: true) }
        logger.trace("SIP out", metadata: ["to": "\(destination)", "message": "\(String(decoding: message.serialized(), as: UTF8.self))"])
        transports.send(message.serialized(), to: destination) { [logger] error in
            if let error { logger.notice("SIP send failed", metadata: ["to": "\(destination)", "error": "\(error)"]) }
            completion(error)
        }
    }

    private func input(_ input: SIPTransportInput, from source: SIPDestination) {
        var message: SIPMessage
        switch input {
        case .datagram(let bytes):
            // A UDP keep-alive (CRLF, RFC 5626 §4.4.1 uses STUN; some peers send CRLF): ignore.
            if bytes.allSatisfy({ $0 == 0x0D || $0 == 0x0A || $0 == 0x00 }) { return }
            do {
                message = try SIPMessage(parsing: bytes, limits: configuration.limits)
            } catch {
                malformed(bytes, error, from: source)
                return
            }
        case .message(let framed):
            message = framed
        }
        do {
            try message.validate()
        } catch {
            malformed(message.serialized(), error, from: source)
            return
        }
        logger.trace("SIP in", metadata: ["from": "\(source)", "message": "\(String(decoding: message.serialized(), as: UTF8.self))"])
        if message.isRequest {
            stampVia(&message, source: source)
            receiveRequest(message, from: source)
        } else {
            receiveResponse(message, from: source)
        }
    }

    /// A message that did not parse or validate: a request gets 400 (505 for another SIP
    /// version) when it has a usable Via; a response is dropped. Counted either way.
    private func malformed(_ bytes: [UInt8], _ error: SIPParseError, from source: SIPDestination) {
        let isResponse = bytes.starts(with: Array("SIP/".utf8))
        metrics.parseErrors(isResponse ? .response : .request)
        logger.notice("Malformed SIP message", metadata: ["from": "\(source)", "error": "\(error)", "kind": "\(isResponse ? "response" : "request")"])
        guard !isResponse, var response = SIPMessage.badRequest(for: bytes, error: error, limits: configuration.limits) else { return }
        response.headers.append("Server", configuration.userAgent)
        let destination = Self.responseDestination(topVia: response.vias.first, source: source)
        transmit(response, to: destination) { _ in }
    }

    /// RFC 3261 §18.2.1 and RFC 3581 §4: `received` when the sent-by host is not the source
    /// address, and the source port in an empty `rport`.
    private func stampVia(_ message: inout SIPMessage, source: SIPDestination) {
        var fields = message.headers.fields
        guard let index = fields.firstIndex(where: { $0.canonicalName == "Via" }) else { return }
        let values = HeaderValue.splitList(fields[index].value)
        guard let first = values.first, var via = Via(parsing: first) else { return }
        let sourceIP = source.ipAddress
        if via.bareHost != sourceIP || via.rport != nil { via.setParameter("received", sourceIP) }
        if via.rport != nil { via.setParameter("rport", String(source.port)) }
        fields[index].value = ([via.serialized] + values.dropFirst()).joined(separator: ", ")
        message.headers = SIPHeaders(fields)
    }

    /// Where responses to a request go (RFC 3261 §18.2.2, RFC 3581 §4): back on the stream it
    /// came on; over UDP to the source address when `rport` asked for it, else to the
    /// `received` address and the sent-by port.
    static func responseDestination(topVia: Via?, source: SIPDestination) -> SIPDestination {
        guard source.transport == .udp, let via = topVia, via.rport == nil || via.rport == "" else { return source }
        let port = via.port ?? SIPTransport.udp.defaultPort
        guard let address = try? SocketAddress(ipAddress: source.ipAddress, port: port) else { return source }
        return SIPDestination(transport: .udp, address: address)
    }

    private func receiveRequest(_ request: SIPMessage, from source: SIPDestination) {
        guard let method = request.method else { return }
        guard let key = SIPTransactionKey(request) else {
            // validate() saw a branch; without the magic cookie it is RFC 2543's, unsupported.
            var response = request.response(statusCode: 400, reasonPhrase: "Via branch without the RFC 3261 magic cookie")
            response.headers.append("Server", configuration.userAgent)
            transmit(response, to: Self.responseDestination(topVia: request.vias.first, source: source)) { _ in }
            return
        }
        let destination = Self.responseDestination(topVia: request.vias.first, source: source)
        if method == .ack {
            if var entry = servers[key], entry.machine is InviteServerTransaction {
                let actions = entry.machine.receive(request)
                servers[key] = entry
                runServer(key, actions, retransmission: false)
            } else {
                onRequest(SIPIncomingRequest(message: request, source: source, transaction: nil))
            }
            return
        }
        if var entry = servers[key] {
            metrics.retransmissionReceived()
            let actions = entry.machine.receive(request)
            servers[key] = entry
            runServer(key, actions, retransmission: true)
            return
        }
        metrics.transaction(.server, method)
        let reliable = source.transport.isReliable
        if method == .invite {
            let t = InviteServerTransaction(request: request, reliable: reliable, timers: configuration.timers)
            servers[key] = ServerEntry(machine: t, destination: destination)
            runServer(key, t.start(), retransmission: false)
            return
        }
        let t = NonInviteServerTransaction(request: request, reliable: reliable, timers: configuration.timers)
        servers[key] = ServerEntry(machine: t, destination: destination)
        if method == .cancel {
            // RFC 3261 §9.2: the INVITE with the same branch, still without a final response.
            var inviteKey = key
            inviteKey.method = .invite
            let id = SIPServerTransactionID(key: key)
            guard let inviteTransaction = servers[inviteKey]?.machine as? InviteServerTransaction else {
                respond(481, "Call/Transaction Does Not Exist", to: id)
                return
            }
            respond(200, "OK", to: id)
            if inviteTransaction.state == .proceeding { onCancel(SIPServerTransactionID(key: inviteKey), request) }
            return
        }
        runServer(key, t.start(), retransmission: false)
    }

    private func receiveResponse(_ response: SIPMessage, from source: SIPDestination) {
        guard let code = response.statusCode else { return }
        metrics.response(code, sent: false)
        guard let key = SIPTransactionKey(response), var entry = clients[key] else {
            onStrayResponse(response, source)
            return
        }
        let actions = entry.machine.receive(response)
        clients[key] = entry
        runClient(key, actions, retransmission: false)
    }

    private func defaultRequestHandler(_ request: SIPIncomingRequest) {
        guard let id = request.transaction else { return }
        if request.message.method == .options {
            var response = request.message.response(statusCode: 200, reasonPhrase: "OK", toTag: Self.newTag())
            response.headers.append("Allow", Self.allow)
            respond(response, to: id)
        } else {
            respond(501, "Not Implemented", to: id)
        }
    }

    /// The methods Tandem's UA handles (Allow, RFC 3261 §20.5).
    public static let allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, PRACK"
}

extension Via {
    /// Sets a parameter, keeping its place when present, else adding it last.
    mutating func setParameter(_ name: String, _ value: String) {
        if parameters[name] == nil { parameterOrder.append(name) }
        parameters[name] = value
    }
}

/// The SIP counters (swift-metrics): transactions, retransmissions, responses by class,
/// parse errors, timeouts. Each counter is made once and kept (the endpoint's loop only).
final class SIPMetrics {
    enum Kind: String { case client, server }
    enum ParseErrorKind: String { case request, response, stream }

    private static let methods: Set<String> = ["INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "OPTIONS", "PRACK", "UPDATE", "INFO"]
    private var counters: [String: Counter] = [:]

    private func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Counter {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        if let counter = counters[key] { return counter }
        let counter = Counter(label: label, dimensions: dimensions)
        counters[key] = counter
        return counter
    }

    func transaction(_ kind: Kind, _ method: SIPMethod) {
        counter("tandem_sip_transactions_total", [("kind", kind.rawValue), ("method", Self.methods.contains(method.name) ? method.name : "other")]).increment()
    }

    func retransmission(_ kind: Kind) {
        counter("tandem_sip_retransmissions_total", [("kind", kind.rawValue)]).increment()
    }

    func retransmissionReceived() {
        counter("tandem_sip_retransmissions_received_total").increment()
    }

    func response(_ code: Int, sent: Bool) {
        counter("tandem_sip_responses_total", [("class", "\(min(max(code / 100, 1), 6))xx"), ("direction", sent ? "sent" : "received")]).increment()
    }

    func parseErrors(_ kind: ParseErrorKind) {
        counter("tandem_sip_parse_errors_total", [("kind", kind.rawValue)]).increment()
    }

    func timeout() {
        counter("tandem_sip_transaction_timeouts_total").increment()
    }
}

/// What the endpoint asks of a client transaction, INVITE or not (RFC 3261 §17.1).
protocol ClientTransactionMachine: Sendable {
    func start() -> [SIPTransactionAction]
    mutating func receive(_ response: SIPMessage) -> [SIPTransactionAction]
    mutating func fire(_ timer: SIPTransactionTimer) -> [SIPTransactionAction]
    mutating func transportError() -> [SIPTransactionAction]
}

/// What the endpoint asks of a server transaction, INVITE or not (RFC 3261 §17.2).
protocol ServerTransactionMachine: Sendable {
    var request: SIPMessage { get }
    func start() -> [SIPTransactionAction]
    mutating func respond(_ response: SIPMessage) -> [SIPTransactionAction]
    mutating func receive(_ message: SIPMessage) -> [SIPTransactionAction]
    mutating func fire(_ timer: SIPTransactionTimer) -> [SIPTransactionAction]
}

extension InviteClientTransaction: ClientTransactionMachine {}
extension NonInviteClientTransaction: ClientTransactionMachine {}
extension InviteServerTransaction: ServerTransactionMachine {}
extension NonInviteServerTransaction: ServerTransactionMachine {}
