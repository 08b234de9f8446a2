import Configuration
import Foundation
import Logging

extension TandemConfiguration {
    /// The file ``load(file:environment:)`` reads: `explicit` when given, else
    /// `config/tandem.yaml` when it exists in the working directory, else none.
    public static func resolveFile(_ explicit: String?) -> String? {
        if let explicit { return explicit }
        return FileManager.default.fileExists(atPath: defaultFilePath) ? defaultFilePath : nil
    }

    /// Loads the configuration: `TANDEM_*` environment variables first, then the YAML file
    /// (see ``resolveFile(_:)``), then the built-in defaults; and validates it.
    ///
    /// Lists are YAML sequences in the file and comma-separated in the environment.
    public static func load(
        file explicit: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws(ConfigurationError) -> TandemConfiguration {
        var providers: [any ConfigProvider] = [
            EnvironmentVariablesProvider(
                environmentVariables: environment.filter { $0.key.hasPrefix(environmentPrefix + "_") },
                arraySeparator: ","
            )
            .prefixKeys(with: ConfigKey([environmentPrefix.lowercased()]))
        ]
        if let path = resolveFile(explicit) {
            guard FileManager.default.fileExists(atPath: path) else { throw .fileNotFound(path: path) }
            do {
                providers.append(try await FileProvider<YAMLSnapshot>(filePath: .init(path)))
            } catch {
                throw .unreadableFile(path: path, reason: "\(error)")
            }
        }
        let reader = ConfigReader(providers: providers)
        var values: [String: RawValue] = [:]
        for key in ConfigurationKey.all {
            values[key.name] = try await Self.read(key, from: reader)
        }
        return try parse(values)
    }

    /// A value as read, before parsing: the text of a scalar, or the items of a list.
    enum RawValue: Equatable {
        case scalar(String)
        case list([String])
    }

    private static func read(_ key: ConfigurationKey, from reader: ConfigReader) async throws(ConfigurationError) -> RawValue {
        let configKey = ConfigKey(key.name.split(separator: ".").map(String.init))
        if key.isList {
            do {
                if let list = try await reader.fetchStringArray(forKey: configKey) {
                    return .list(list.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty })
                }
            } catch {
                // A scalar where a list belongs: accept "a, b" as the environment does.
                do {
                    if let text = try await reader.fetchString(forKey: configKey) { return .list(splitList(text)) }
                } catch {
                    throw .unreadableValue(key: key.name, reason: "expected a list: \(error)")
                }
            }
            return .list(splitList(key.defaultValue))
        }
        do {
            if let text = try await reader.fetchString(forKey: configKey) { return .scalar(text.trimmingWhitespace()) }
        } catch {
            throw .unreadableValue(key: key.name, reason: "expected a single value: \(error)")
        }
        return .scalar(key.defaultValue)
    }

    static func splitList(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
    }

    /// Parses and validates raw values by key name; keys absent from `values` take their defaults.
    static func parse(_ values: [String: RawValue]) throws(ConfigurationError) -> TandemConfiguration {
        let parser = ValueParser(values: values)
        var configuration = TandemConfiguration()

        configuration.http.listenAddress = try parser.ipAddress(.httpListenAddress)
        configuration.http.port = try parser.port(.httpPort)
        configuration.http.sessionLifetime = try parser.integer(.httpSessionLifetime, in: 10...604_800)
        configuration.http.corsOrigins = try parser.list(.httpCORSOrigins) { text throws(ConfigurationError) in
            // An origin is scheme://host[:port] (RFC 6454 §6.2), or *.
            let valid = text == "*" || ((text.hasPrefix("https://") || text.hasPrefix("http://")) && !text.dropFirst(8).contains("/") && text.count <= 255)
            guard valid else { throw .invalidValue(key: "http.cors-origins", value: text, reason: "must be * or scheme://host[:port] without a path") }
            return text
        }
        configuration.http.demo = try parser.boolean(.httpDemo)

        configuration.cms.allowedNetworks = try parser.cidrs(.cmsAllowedNetworks)
        let cmsListen = try parser.hostPort(.cmsListen)
        if !cmsListen.isEmpty {
            guard let target = HostAndPort(cmsListen), let ip = IPAddress(target.host), let port = target.port else {
                throw .invalidValue(key: "cms.listen", value: cmsListen, reason: "must be an IP address and a port, as 127.0.0.1:8443 or [::1]:8443")
            }
            configuration.cms.listen = (ip, port)
        }
        configuration.cms.sessionIdleTimeout = try parser.integer(.cmsSessionIdleTimeout, in: 60...86_400)
        configuration.cms.sessionLifetime = try parser.integer(.cmsSessionLifetime, in: 300...604_800)
        configuration.cms.drainTimeout = try parser.integer(.cmsDrainTimeout, in: 0...3600)

        configuration.tls.certificatePath = try parser.optionalPath(.tlsCertificate)
        configuration.tls.privateKeyPath = try parser.optionalPath(.tlsPrivateKey)
        configuration.tls.caCertificatePath = try parser.optionalPath(.tlsCACertificate)
        configuration.tls.hostName = try parser.hostPort(.tlsHostName, allowPort: false)

        configuration.storage.dataDirectory = try parser.path(.storageDataDirectory)

        configuration.log.directory = try parser.path(.logDirectory)
        configuration.log.level = try parser.logLevel(.logLevel)
        configuration.log.maxFiles = try parser.integer(.logMaxFiles, in: 1...1000)
        configuration.log.maxFileSize = try parser.integer(.logMaxFileSize, in: 4096...Int(Int32.max))

        var turn = TandemConfiguration.TURN()
        turn.enabled = try parser.boolean(.turnEnabled)
        turn.listenAddresses = try parser.ipAddresses(.turnListenAddresses)
        turn.listenPort = try parser.port(.turnListenPort)
        turn.tlsPort = try parser.port(.turnTLSPort)
        turn.transports = try parser.list(.turnTransports) { text throws(ConfigurationError) in
            guard let transport = TURNTransport(rawValue: text.lowercased()) else {
                throw .invalidChoice(key: "turn.transports", value: text, allowed: TURNTransport.allCases.map(\.rawValue))
            }
            return transport
        }
        turn.realm = try parser.realm(.turnRealm)
        turn.allowedPeers = try parser.cidrs(.turnAllowedPeers)
        turn.deniedPeers = try parser.cidrs(.turnDeniedPeers)
        let relayMin = try parser.port(.turnRelayPortMin)
        let relayMax = try parser.port(.turnRelayPortMax)
        guard relayMin <= relayMax else { throw .invalidRelayPortRange(min: relayMin, max: relayMax) }
        turn.relayPortRange = relayMin...relayMax
        turn.nonceLifetime = try parser.integer(.turnNonceLifetime, in: 1...86_400)
        turn.userQuota = try parser.integer(.turnUserQuota, in: 0...Int(Int32.max))
        turn.totalQuota = try parser.integer(.turnTotalQuota, in: 0...Int(Int32.max))
        turn.maxRequestsPerSecond = try parser.integer(.turnMaxRequestsPerSecond, in: 0...Int(Int32.max))
        turn.maxBytesPerSecond = try parser.integer(.turnMaxBPS, in: 0...Int(Int32.max))
        turn.threads = try parser.integer(.turnThreads, in: 0...1024)
        turn.batchWindowMicroseconds = try parser.integer(.turnBatchWindow, in: 0...10_000)
        turn.tlsMinimumVersion = try parser.choice(.turnTLSMinVersion, ["1.0", "1.1", "1.2", "1.3"])
        turn.seed.relayAddresses = try parser.list(.turnRelayAddresses) { text throws(ConfigurationError) in
            guard let address = IPAddress(text), !address.isUnspecified else {
                throw .invalidIPAddress(key: "turn.relay-addresses", value: text)
            }
            return address
        }
        turn.seed.externalAddresses = try parser.list(.turnExternalAddresses) { text throws(ConfigurationError) in
            do throws(ExternalAddressMapping.ParseError) {
                return try ExternalAddressMapping(parsing: text)
            } catch {
                throw .invalidExternalAddress(key: "turn.external-addresses", value: text, reason: error.description)
            }
        }
        turn.seed.credentialTTL = try parser.integer(.turnCredentialTTL, in: 1...31_536_000)
        turn.seed.sharedSecret = try parser.sharedSecret(.turnSharedSecret)
        configuration.turn = turn

        var media = TandemConfiguration.Media()
        media.enabled = try parser.boolean(.mediaEnabled)
        media.bindAddress = try parser.ipAddress(.mediaBindAddress)
        media.advertisedAddresses = try parser.list(.mediaAdvertisedAddresses) { text throws(ConfigurationError) in
            guard let address = IPAddress(text), !address.isUnspecified else { throw .invalidIPAddress(key: "media.advertised-addresses", value: text) }
            return address
        }
        let mediaMin = try parser.port(.mediaPortMin)
        let mediaMax = try parser.port(.mediaPortMax)
        guard mediaMin <= mediaMax, mediaMin > 0 else { throw .invalidValue(key: "media.port-min", value: "\(mediaMin)", reason: "must be above 0 and not above media.port-max (\(mediaMax))") }
        media.portRange = mediaMin...mediaMax
        media.sharedPort = try parser.integer(.mediaSharedPort, in: 0...65535)
        media.threads = try parser.integer(.mediaThreads, in: 0...1024)
        media.batchWindowMicroseconds = try parser.integer(.mediaBatchWindow, in: 0...10_000)
        media.opusBitrate = try parser.integer(.mediaOpusBitrate, in: 6000...128_000)
        media.opusComplexity = try parser.integer(.mediaOpusComplexity, in: 0...10)
        media.opusGovernor = try parser.boolean(.mediaOpusGovernor)
        media.sipCodec = try parser.choice(.mediaSIPCodec, ["pcmu", "pcma", "opus"])
        media.preferPassThrough = try parser.boolean(.mediaPreferPassThrough)
        media.consentTimeout = try parser.integer(.mediaConsentTimeout, in: 5...300)
        media.echo = try parser.boolean(.mediaEcho)
        configuration.media = media

        var sip = TandemConfiguration.SIP()
        sip.listenAddresses = try parser.ipAddresses(.sipListenAddresses)
        sip.listenPort = try parser.port(.sipListenPort)
        sip.tlsPort = try parser.port(.sipTLSPort)
        sip.transports = try parser.list(.sipTransports) { text throws(ConfigurationError) in
            try Self.sipTransport(text, key: "sip.transports")
        }
        sip.advertisedAddress = try parser.hostPort(.sipAdvertisedAddress, allowPort: false)
        sip.platformPrimary = try parser.hostPort(.sipPlatformPrimary)
        sip.platformSecondary = try parser.hostPort(.sipPlatformSecondary)
        sip.platformTransport = try Self.sipTransport(parser.choice(.sipPlatformTransport, TandemConfiguration.SIP.Transport.allCases.map(\.rawValue)), key: "sip.platform-transport")
        sip.outboundProxy = try parser.hostPort(.sipOutboundProxy)
        sip.domain = try parser.hostPort(.sipDomain, allowPort: false)
        sip.registrationExpires = try parser.integer(.sipRegistrationExpires, in: 300...86_400)
        sip.keepAliveInterval = try parser.integer(.sipKeepAliveInterval, in: 0...3600)
        sip.registrationsPerSecond = try parser.integer(.sipRegistrationsPerSecond, in: 1...100_000)
        sip.instanceID = try parser.boolean(.sipInstanceID)
        sip.tlsVerifyPeer = try parser.boolean(.sipTLSVerifyPeer)
        sip.registerAll = try parser.boolean(.sipRegisterAll)
        sip.unregisterGrace = try parser.integer(.sipUnregisterGrace, in: 0...3600)
        sip.guestExtension = try parser.sipUser(.sipGuestExtension)
        sip.dtmfMode = try parser.choice(.sipDTMFMode, ["rfc4733", "info"])
        sip.srtp = try parser.choice(.sipSRTP, ["off", "preferred", "required"])
        let rtpMin = try parser.port(.sipRTPPortMin)
        let rtpMax = try parser.port(.sipRTPPortMax)
        guard rtpMin <= rtpMax, rtpMin > 0 else { throw .invalidValue(key: "sip.rtp-port-min", value: "\(rtpMin)", reason: "must be above 0 and not above sip.rtp-port-max (\(rtpMax))") }
        sip.rtpPortRange = rtpMin...rtpMax
        configuration.sip = sip

        try configuration.validate()
        return configuration
    }

    static func sipTransport(_ text: String, key: String) throws(ConfigurationError) -> TandemConfiguration.SIP.Transport {
        guard let transport = TandemConfiguration.SIP.Transport(rawValue: text.lowercased()) else {
            throw .invalidChoice(key: key, value: text, allowed: TandemConfiguration.SIP.Transport.allCases.map(\.rawValue))
        }
        return transport
    }

    /// Checks the rules that span several keys.
    public func validate() throws(ConfigurationError) {
        switch (tls.certificatePath, tls.privateKeyPath) {
        case (.some, .none): throw .incompleteTLSFiles(reason: "tls.certificate is set but tls.private-key is empty")
        case (.none, .some): throw .incompleteTLSFiles(reason: "tls.private-key is set but tls.certificate is empty")
        default: break
        }
        if tls.caCertificatePath != nil, tls.certificatePath == nil {
            throw .incompleteTLSFiles(reason: "tls.ca-certificate needs tls.certificate and tls.private-key")
        }
        if !sip.platformPrimary.isEmpty, sip.transports.isEmpty {
            throw .invalidValue(key: "sip.transports", value: "", reason: "must name at least one transport while sip.platform-primary is set")
        }
        if sip.transports.contains(.tcp), sip.transports.contains(.tls), sip.listenPort == sip.tlsPort {
            throw .conflictingPorts(reason: "sip.listen-port and sip.tls-port are both \(sip.tlsPort) with tcp and tls enabled")
        }
        guard turn.enabled else { return }
        if turn.transports.isEmpty {
            throw .invalidValue(key: "turn.transports", value: "", reason: "must name at least one transport while TURN is enabled")
        }
        if turn.listenAddresses.isEmpty {
            throw .invalidValue(key: "turn.listen-addresses", value: "", reason: "must name at least one address while TURN is enabled")
        }
        if turn.transports.contains(.tcp), turn.transports.contains(.tls), turn.listenPort == turn.tlsPort {
            throw .conflictingPorts(reason: "turn.listen-port and turn.tls-port are both \(turn.tlsPort) with tcp and tls enabled")
        }
        if turn.relayPortRange.contains(turn.listenPort), turn.transports.contains(.udp) {
            throw .conflictingPorts(reason: "turn.listen-port \(turn.listenPort) lies in the relay port range \(turn.relayPortRange)")
        }
    }
}

/// Parses raw values into typed ones, throwing ``ConfigurationError`` with the key name.
private struct ValueParser {
    var values: [String: TandemConfiguration.RawValue]

    private func scalar(_ key: ConfigurationKey) -> String {
        switch values[key.name] {
        case .scalar(let text): text
        case .list(let items): items.joined(separator: ",")
        case nil: key.defaultValue
        }
    }

    private func items(_ key: ConfigurationKey) -> [String] {
        switch values[key.name] {
        case .list(let items): items
        case .scalar(let text): TandemConfiguration.splitList(text)
        case nil: TandemConfiguration.splitList(key.defaultValue)
        }
    }

    func list<T>(_ key: ConfigurationKey, _ transform: (String) throws(ConfigurationError) -> T) throws(ConfigurationError) -> [T] {
        var result: [T] = []
        for item in items(key) { result.append(try transform(item)) }
        return result
    }

    /// A list of IP addresses (the unspecified ones allowed: they mean "every address").
    func ipAddresses(_ key: ConfigurationKey) throws(ConfigurationError) -> [IPAddress] {
        try list(key) { text throws(ConfigurationError) in
            guard let address = IPAddress(text) else { throw .invalidIPAddress(key: key.name, value: text) }
            return address
        }
    }

    func ipAddress(_ key: ConfigurationKey) throws(ConfigurationError) -> IPAddress {
        let text = scalar(key)
        guard let address = IPAddress(text) else { throw .invalidIPAddress(key: key.name, value: text) }
        return address
    }

    func port(_ key: ConfigurationKey) throws(ConfigurationError) -> Int {
        let text = scalar(key)
        guard let port = Int(text), (1...65535).contains(port) else { throw .invalidPort(key: key.name, value: text) }
        return port
    }

    func integer(_ key: ConfigurationKey, in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        let text = scalar(key)
        guard let value = Int(text), range.contains(value) else {
            throw .invalidInteger(key: key.name, value: text, expected: "an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    func boolean(_ key: ConfigurationKey) throws(ConfigurationError) -> Bool {
        let text = scalar(key)
        switch text.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw .invalidBoolean(key: key.name, value: text)
        }
    }

    func choice(_ key: ConfigurationKey, _ allowed: [String]) throws(ConfigurationError) -> String {
        let text = scalar(key)
        guard allowed.contains(text) else { throw .invalidChoice(key: key.name, value: text, allowed: allowed) }
        return text
    }

    func logLevel(_ key: ConfigurationKey) throws(ConfigurationError) -> Logger.Level {
        let text = scalar(key)
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw .invalidChoice(key: key.name, value: text, allowed: Logger.Level.allCases.map(\.rawValue))
        }
        return level
    }

    func path(_ key: ConfigurationKey) throws(ConfigurationError) -> String {
        let text = scalar(key)
        guard !text.isEmpty else { throw .invalidValue(key: key.name, value: text, reason: "must not be empty") }
        guard !text.contains("\0") else { throw .invalidValue(key: key.name, value: text, reason: "contains a NUL byte") }
        return text
    }

    /// A SIP user part (an extension number), or empty: no spaces, `@`, `:` or `;` (RFC 3261 §25.1 `user`, kept plain).
    func sipUser(_ key: ConfigurationKey) throws(ConfigurationError) -> String {
        let text = scalar(key).trimmingCharacters(in: .whitespaces)
        guard text.utf8.count <= 64, !text.contains(where: { $0.isWhitespace || "@:;<>\"".contains($0) }) else {
            throw .invalidValue(key: key.name, value: text, reason: "must be an extension's user part (at most 64 characters, no spaces, @ : ; < > or quotes)")
        }
        return text
    }

    func optionalPath(_ key: ConfigurationKey) throws(ConfigurationError) -> String? {
        scalar(key).isEmpty ? nil : try path(key)
    }

    /// REALM: fewer than 128 characters, no quotes or control characters (RFC 8489 §14.9).
    /// A provisioned shared secret: empty, or 16–256 printable ASCII characters.
    func sharedSecret(_ key: ConfigurationKey) throws(ConfigurationError) -> String {
        let text = scalar(key)
        guard text.isEmpty || (16...256).contains(text.count) && text.allSatisfy({ $0.isASCII && !$0.isWhitespace && !$0.isNewline && $0.asciiValue! >= 0x21 }) else {
            throw .invalidValue(key: key.name, value: "(hidden)", reason: "must be empty (generate) or 16–256 printable ASCII characters")
        }
        return text
    }

    /// `host[:port]` (a name, an IPv4 address, or an IPv6 address in brackets when a port
    /// follows), or empty.
    func hostPort(_ key: ConfigurationKey, allowPort: Bool = true) throws(ConfigurationError) -> String {
        let text = scalar(key).trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty else { return "" }
        guard let parsed = HostAndPort(text), allowPort || parsed.port == nil else {
            throw .invalidValue(key: key.name, value: text, reason: allowPort ? "must be host or host:port" : "must be a host name or address")
        }
        return text
    }

    func realm(_ key: ConfigurationKey) throws(ConfigurationError) -> String {
        let text = scalar(key)
        guard !text.isEmpty, text.count < 128, !text.contains(where: { $0 == "\"" || $0 == "\\" || $0.isNewline }),
            !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw .invalidValue(key: key.name, value: text, reason: "must be 1–127 characters without quotes, backslashes or control characters")
        }
        return text
    }

    func cidrs(_ key: ConfigurationKey) throws(ConfigurationError) -> [CIDR] {
        try list(key) { text throws(ConfigurationError) in
            do throws(CIDR.ParseError) {
                return try CIDR(parsing: text)
            } catch {
                throw .invalidCIDR(key: key.name, value: text, reason: error.description)
            }
        }
    }
}
