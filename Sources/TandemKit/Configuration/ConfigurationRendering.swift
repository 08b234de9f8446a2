extension TandemConfiguration {
    /// The effective value of `key` as text, in the environment-variable syntax (lists
    /// comma-separated, empty for "none"); parsing it gives the value back.
    public func text(of key: ConfigurationKey) -> [String] {
        func one(_ value: some CustomStringConvertible) -> [String] { [value.description] }
        switch key {
        case .httpListenAddress: return one(http.listenAddress)
        case .httpPort: return one(http.port)
        case .httpSessionLifetime: return one(http.sessionLifetime)
        case .httpCORSOrigins: return http.corsOrigins
        case .httpDemo: return one(http.demo)
        case .tlsCertificate: return one(tls.certificatePath ?? "")
        case .tlsPrivateKey: return one(tls.privateKeyPath ?? "")
        case .tlsCACertificate: return one(tls.caCertificatePath ?? "")
        case .tlsHostName: return one(tls.hostName)
        case .storageDataDirectory: return one(storage.dataDirectory)
        case .logDirectory: return one(log.directory)
        case .logLevel: return one(log.level.rawValue)
        case .logMaxFiles: return one(log.maxFiles)
        case .logMaxFileSize: return one(log.maxFileSize)
        case .turnEnabled: return one(turn.enabled)
        case .turnListenAddresses: return turn.listenAddresses.map(\.description)
        case .turnListenPort: return one(turn.listenPort)
        case .turnTLSPort: return one(turn.tlsPort)
        case .turnTransports: return turn.transports.map(\.rawValue)
        case .turnRealm: return one(turn.realm)
        case .turnAllowedPeers: return turn.allowedPeers.map(\.description)
        case .turnDeniedPeers: return turn.deniedPeers.map(\.description)
        case .turnRelayPortMin: return one(turn.relayPortRange.lowerBound)
        case .turnRelayPortMax: return one(turn.relayPortRange.upperBound)
        case .turnNonceLifetime: return one(turn.nonceLifetime)
        case .turnUserQuota: return one(turn.userQuota)
        case .turnTotalQuota: return one(turn.totalQuota)
        case .turnMaxRequestsPerSecond: return one(turn.maxRequestsPerSecond)
        case .turnMaxBPS: return one(turn.maxBytesPerSecond)
        case .turnThreads: return one(turn.threads)
        case .turnBatchWindow: return one(turn.batchWindowMicroseconds)
        case .turnTLSMinVersion: return one(turn.tlsMinimumVersion)
        case .turnRelayAddresses: return turn.seed.relayAddresses.map(\.description)
        case .turnExternalAddresses: return turn.seed.externalAddresses.map(\.description)
        case .turnCredentialTTL: return one(turn.seed.credentialTTL)
        case .turnSharedSecret: return one(turn.seed.sharedSecret.isEmpty ? "" : "(set)")  // never printed
        case .mediaEnabled: return one(media.enabled)
        case .mediaBindAddress: return one(media.bindAddress)
        case .mediaAdvertisedAddresses: return media.advertisedAddresses.map(\.description)
        case .mediaPortMin: return one(media.portRange.lowerBound)
        case .mediaPortMax: return one(media.portRange.upperBound)
        case .mediaSharedPort: return one(media.sharedPort)
        case .mediaThreads: return one(media.threads)
        case .mediaBatchWindow: return one(media.batchWindowMicroseconds)
        case .mediaOpusBitrate: return one(media.opusBitrate)
        case .mediaOpusComplexity: return one(media.opusComplexity)
        case .mediaOpusGovernor: return one(media.opusGovernor)
        case .mediaSIPCodec: return one(media.sipCodec)
        case .mediaPreferPassThrough: return one(media.preferPassThrough)
        case .mediaConsentTimeout: return one(media.consentTimeout)
        case .mediaEcho: return one(media.echo)
        case .sipListenAddresses: return sip.listenAddresses.map(\.description)
        case .sipListenPort: return one(sip.listenPort)
        case .sipTLSPort: return one(sip.tlsPort)
        case .sipTransports: return sip.transports.map(\.rawValue)
        case .sipAdvertisedAddress: return one(sip.advertisedAddress)
        case .sipPlatformPrimary: return one(sip.platformPrimary)
        case .sipPlatformSecondary: return one(sip.platformSecondary)
        case .sipPlatformTransport: return one(sip.platformTransport.rawValue)
        case .sipOutboundProxy: return one(sip.outboundProxy)
        case .sipDomain: return one(sip.domain)
        case .sipRegistrationExpires: return one(sip.registrationExpires)
        case .sipKeepAliveInterval: return one(sip.keepAliveInterval)
        case .sipRegistrationsPerSecond: return one(sip.registrationsPerSecond)
        case .sipInstanceID: return one(sip.instanceID)
        case .sipTLSVerifyPeer: return one(sip.tlsVerifyPeer)
        case .sipRegisterAll: return one(sip.registerAll)
        case .sipUnregisterGrace: return one(sip.unregisterGrace)
        case .sipGuestExtension: return one(sip.guestExtension)
        case .sipDTMFMode: return one(sip.dtmfMode)
        case .sipSRTP: return one(sip.srtp)
        case .sipRTPPortMin: return one(sip.rtpPortRange.lowerBound)
        case .sipRTPPortMax: return one(sip.rtpPortRange.upperBound)
        case .cmsAllowedNetworks: return cms.allowedNetworks.map(\.description)
        case .cmsSessionIdleTimeout: return one(cms.sessionIdleTimeout)
        case .cmsSessionLifetime: return one(cms.sessionLifetime)
        case .cmsDrainTimeout: return one(cms.drainTimeout)
        case .cmsListen: return one(cms.listen.map { (($0.address.family == .ipv6) ? "[\($0.address)]" : "\($0.address)") + ":\($0.port)" } ?? "")
        default: preconditionFailure("unknown configuration key \(key.name)")
        }
    }

    /// The configuration as a YAML document that ``load(file:environment:)`` reads back.
    public func renderYAML() -> String {
        var lines: [String] = []
        var section = ""
        for key in ConfigurationKey.all {
            if key.section != section {
                if !section.isEmpty { lines.append("") }
                section = key.section
                lines.append("\(section):")
            }
            let items = text(of: key)
            let value = key.isList ? "[" + items.map(Self.yamlQuoted).joined(separator: ", ") + "]" : Self.yamlScalar(items.first ?? "")
            lines.append("  \(key.leaf): \(value)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The configuration as `TANDEM_…=value` lines.
    public func renderEnvironment() -> String {
        ConfigurationKey.all.map { "\($0.environmentVariable)=\(text(of: $0).joined(separator: ","))" }
            .joined(separator: "\n") + "\n"
    }

    /// A Markdown table of every key: environment variable, default and meaning.
    public static func markdownKeyTable() -> String {
        var lines = ["| key | environment variable | default | meaning |", "| --- | --- | --- | --- |"]
        for key in ConfigurationKey.all {
            let defaultText = key.defaultValue.isEmpty ? "(empty)" : "`\(key.defaultValue)`"
            lines.append("| `\(key.name)` | `\(key.environmentVariable)` | \(defaultText) | \(key.summary.replacingPipes()) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func yamlScalar(_ text: String) -> String {
        if !text.isEmpty, text.allSatisfy(\.isASCIIDigit) { return text }
        if text == "true" || text == "false" { return text }
        return yamlQuoted(text)
    }

    private static func yamlQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    out += "\\x" + String(scalar.value, radix: 16).leftPadded(to: 2)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate func replacingPipes() -> String { split(separator: "|", omittingEmptySubsequences: false).joined(separator: "\\|") }
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
