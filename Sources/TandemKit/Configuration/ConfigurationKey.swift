/// One configuration key: its dotted name, default, meaning and environment variable.
///
/// This table is the single list of keys: the loader reads exactly these, `tandem config
/// keys` prints them, and the README and `config/tandem.yaml` document the same list
/// (a test checks the file against it).
public struct ConfigurationKey: Sendable, Hashable {
    /// The dotted key, as in the YAML file: `turn.listen-port`.
    public let name: String
    /// The default as text, in the environment-variable syntax (lists comma-separated).
    public let defaultValue: String
    /// Whether the value is a list (YAML sequence, or comma-separated in the environment).
    public let isList: Bool
    /// Whether the key only seeds the database on first start (the database wins afterwards).
    public let isSeed: Bool
    /// One-line meaning.
    public let summary: String

    init(_ name: String, default defaultValue: String, list: Bool = false, seed: Bool = false, _ summary: String) {
        self.name = name
        self.defaultValue = defaultValue
        self.isList = list
        self.isSeed = seed
        self.summary = summary
    }

    /// The overriding environment variable: `TANDEM_` + the key upper-cased, every
    /// character that is not a letter or digit replaced by `_` (`TANDEM_TURN_LISTEN_PORT`).
    public var environmentVariable: String {
        TandemConfiguration.environmentPrefix + "_"
            + String(name.uppercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
    }

    /// The top-level section (`turn` for `turn.listen-port`).
    public var section: String { String(name.prefix { $0 != "." }) }

    /// The key within its section (`listen-port` for `turn.listen-port`).
    public var leaf: String { String(name.drop { $0 != "." }.dropFirst()) }
}

extension ConfigurationKey {
    static let httpListenAddress = Self("http.listen-address", default: "0.0.0.0", "Address the HTTPS listener binds (IPv4 or IPv6; 0.0.0.0 = all IPv4).")
    static let httpPort = Self("http.port", default: "7443", "HTTPS port: /healthz, /readyz, /metrics and the control API.")
    static let httpSessionLifetime = Self("http.session-lifetime", default: "43200", "Seconds a browser session of POST /api/v1/sessions lives (a shift: 12 h); its extension is free again after.")
    static let httpDemo = Self("http.demo", default: "false", "Serve the demo application server: POST /webkit/demo/session and /webkit/demo/guest-session give any visitor a guest session of the built-in echo number (\"echo\") or of a service, for the demo pages /webkit/demo/agent.html and click-to-call.html. For trying Tandem out; never on a public listener.")
    static let httpCORSOrigins = Self("http.cors-origins", default: "", list: true, "Web origins (https://app.example.com, or *) whose pages may call /api/v1 and /webkit across origins (CORS); empty = none. /cms and /oauth/token never.")
    static let tlsCertificate = Self("tls.certificate", default: "", "PEM certificate (chain) file for HTTPS and TURN over TLS; empty = generate a self-signed one.")
    static let tlsPrivateKey = Self("tls.private-key", default: "", "PEM private key file of that certificate (unencrypted); empty = generate.")
    static let tlsCACertificate = Self("tls.ca-certificate", default: "", "PEM file of intermediate/CA certificates sent after the certificate; empty = none.")
    static let tlsHostName = Self("tls.host-name", default: "", "Name clients reach Tandem by; a certificate uploaded in /cms must list it in its subjectAltName. Empty = this machine's host name.")
    static let storageDataDirectory = Self("storage.data-directory", default: "./.tandem/data", "Directory of the database (tandem.sqlite) and the generated certificate (tls/).")
    static let logDirectory = Self("log.directory", default: "./.tandem/log", "Directory of tandem.log and its rotated files.")
    static let logLevel = Self("log.level", default: "info", "Minimum level: trace, debug, info, notice, warning, error or critical.")
    static let logMaxFiles = Self("log.max-files", default: "10", "Log files kept: tandem.log plus tandem.log.1 … tandem.log.<max-files - 1>.")
    static let logMaxFileSize = Self("log.max-file-size", default: "10485760", "Size in bytes at which tandem.log is rotated.")
    static let turnEnabled = Self("turn.enabled", default: "true", "Whether the TURN relay runs.")
    static let turnListenAddresses = Self("turn.listen-addresses", default: "0.0.0.0", list: true, "Addresses the TURN listeners bind.")
    static let turnListenPort = Self("turn.listen-port", default: "3478", "TURN port for UDP and TCP (RFC 8656 §4).")
    static let turnTLSPort = Self("turn.tls-port", default: "5349", "TURN over TLS port (RFC 8656 §4).")
    static let turnTransports = Self("turn.transports", default: "udp,tcp,tls", list: true, "Client transports served: udp, tcp, tls.")
    static let turnRealm = Self("turn.realm", default: "tandem", "REALM of the long-term credential mechanism (RFC 8489 §9.2).")
    static let turnAllowedPeers = Self("turn.allowed-peers", default: "", list: true, "Peer CIDRs always allowed, overriding denials (loopback peers need this, e.g. 127.0.0.0/8); empty = none.")
    static let turnDeniedPeers = Self("turn.denied-peers", default: "", list: true, "Peer CIDRs refused with 403 Forbidden (RFC 8656 §9); empty = none.")
    static let turnRelayPortMin = Self("turn.relay-port-min", default: "49152", "Lowest relayed transport port.")
    static let turnRelayPortMax = Self("turn.relay-port-max", default: "65535", "Highest relayed transport port.")
    static let turnNonceLifetime = Self("turn.nonce-lifetime", default: "600", "Seconds a NONCE stays valid before 438 Stale Nonce (RFC 8489 §9.2).")
    static let turnUserQuota = Self("turn.user-quota", default: "100", "Allocations per username at once (0 = unlimited).")
    static let turnTotalQuota = Self("turn.total-quota", default: "10000", "Allocations in all at once (0 = unlimited).")
    static let turnMaxRequestsPerSecond = Self("turn.max-requests-per-second", default: "500", "STUN/TURN requests per second per source IP (0 = unlimited).")
    static let turnMaxBPS = Self("turn.max-bps", default: "0", "Relayed bytes per second per allocation, as coturn's max-bps (0 = unlimited).")
    static let turnThreads = Self("turn.threads", default: "0", "TURN datapath threads (0 = one per core).")
    static let turnBatchWindow = Self("turn.batch-window-us", default: "500", "Receive moderation, like a NIC's interrupt coalescing: once a window this long would gather a datagram or more (load above one datagram per window), a TURN thread that runs out of work rests until this many microseconds have passed since it last woke, instead of waking for each datagram, so that one wake-up relays more datagrams; with work waiting it goes on at once, and each datagram waits at most one window (0 = off, at most 10000).")
    static let turnTLSMinVersion = Self("turn.tls-min-version", default: "1.2", "Lowest TLS version on the TURN TLS port: 1.0, 1.1, 1.2 or 1.3 (RFC 8996 retires 1.0 and 1.1).")
    static let turnRelayAddresses = Self("turn.relay-addresses", default: "", list: true, seed: true, "Relay IPs; empty = the host's non-loopback addresses (127.0.0.1 if none). First start only.")
    static let turnExternalAddresses = Self("turn.external-addresses", default: "", list: true, seed: true, "relayIP=externalIP mappings or plain external IPs behind 1:1 NAT. First start only.")
    static let turnCredentialTTL = Self("turn.credential-ttl", default: "600", seed: true, "Lifetime of issued TURN credentials, seconds. First start only.")
    static let turnSharedSecret = Self("turn.shared-secret", default: "", seed: true, "REST-API shared secret to provision (coturn's static-auth-secret); empty = generate a random one. First start only.")
    static let mediaEnabled = Self("media.enabled", default: "true", "Whether the WebRTC media engine runs.")
    static let mediaBindAddress = Self("media.bind-address", default: "0.0.0.0", "Address the media (ICE/DTLS-SRTP) sockets bind.")
    static let mediaAdvertisedAddresses = Self("media.advertised-addresses", default: "", list: true, "Host candidate addresses put in SDP (a public or 1:1 NAT address); empty = the bind address, or the host's addresses when that is 0.0.0.0.")
    static let mediaPortMin = Self("media.port-min", default: "40000", "Lowest media UDP port (one port per WebRTC leg).")
    static let mediaPortMax = Self("media.port-max", default: "49999", "Highest media UDP port.")
    static let mediaSharedPort = Self("media.shared-port", default: "0", "One UDP port for every WebRTC leg of a media thread (thread i serves this port + i; one firewall rule instead of a range, and one recvmmsg reads many calls), instead of a port per leg; 0 = a port per leg from media.port-min–media.port-max.")
    static let mediaThreads = Self("media.threads", default: "0", "Media datapath threads (0 = one per core).")
    static let mediaBatchWindow = Self("media.batch-window-us", default: "0", "Receive moderation of the media threads, as turn.batch-window-us: under load, microseconds a thread that runs out of work rests since it last woke, so that one wake-up serves more packets (0 = off, at most 10000).")
    static let mediaOpusBitrate = Self("media.opus-bitrate", default: "24000", "Opus bitrate toward browsers, bits per second (6000–128000).")
    static let mediaOpusComplexity = Self("media.opus-complexity", default: "5", "Opus encoder complexity toward browsers (0 cheapest – 10 best).")
    static let mediaOpusGovernor = Self("media.opus-governor", default: "true", "Lower the Opus complexity of a media thread's calls when the thread nears a full core (false = always media.opus-complexity, and a thread past its core falls behind).")
    static let mediaSIPCodec = Self("media.sip-codec", default: "pcmu", "The SIP leg's first codec: pcmu or pcma (the browser's Opus is transcoded to it), or opus (offered first and passed through untranscoded when the platform takes it; G.711 follows).")
    static let mediaPreferPassThrough = Self("media.prefer-pass-through", default: "false", "Answer browsers that offer PCMU/PCMA with G.711 (no transcoding) even when they prefer Opus.")
    static let mediaConsentTimeout = Self("media.consent-timeout", default: "30", "Seconds without an ICE consent check before a leg ends (RFC 7675 says 30).")
    static let mediaEcho = Self("media.echo", default: "false", "Serve the echo test: POST /webkit/echo (SDP offer in, answer out) and /webkit/echo.html.")
    static let sipListenAddresses = Self("sip.listen-addresses", default: "0.0.0.0", list: true, "Addresses the SIP listeners bind.")
    static let sipListenPort = Self("sip.listen-port", default: "5060", "SIP port for UDP and TCP (RFC 3261 §19.1.2).")
    static let sipTLSPort = Self("sip.tls-port", default: "5061", "SIP over TLS port.")
    static let sipTransports = Self("sip.transports", default: "udp,tcp", list: true, "Transports SIP listens on: udp, tcp, tls (tls serves tls.certificate).")
    static let sipAdvertisedAddress = Self("sip.advertised-address", default: "", "Address put in Via and Contact; empty = the first listen address, or the host's first address when that is 0.0.0.0.")
    static let sipPlatformPrimary = Self("sip.platform-primary", default: "", "Primary registrar/proxy of the platform (PBX or trunk): IP address or host name, optionally :port; empty = no platform, SIP does not run.")
    static let sipPlatformSecondary = Self("sip.platform-secondary", default: "", "Secondary registrar/proxy the extensions fail over to; empty = none.")
    static let sipPlatformTransport = Self("sip.platform-transport", default: "udp", "Transport toward the platform: udp, tcp or tls.")
    static let sipOutboundProxy = Self("sip.outbound-proxy", default: "", "Next hop of every request instead of the platform hosts (host[:port]); the proxy then does the failover and sip.platform-secondary is not used; empty = none.")
    static let sipDomain = Self("sip.domain", default: "", "Domain of the extensions' addresses-of-record (sip:3001@domain); empty = the primary's host.")
    static let sipRegistrationExpires = Self("sip.registration-expires", default: "600", "Expiry asked for in REGISTER, seconds (at least 300); refreshed a minute before it ends.")
    static let sipKeepAliveInterval = Self("sip.keep-alive-interval", default: "30", "Seconds between OPTIONS keep-alives to each platform side (0 = none; /readyz then follows the registrations).")
    static let sipRegistrationsPerSecond = Self("sip.registrations-per-second", default: "200", "REGISTERs started per second when many extensions start at once.")
    static let sipInstanceID = Self("sip.instance-id", default: "true", "Send +sip.instance and reg-id (RFC 5626) with each Contact, so a registrar that supports outbound replaces a restarted node's bindings instead of adding to them.")
    static let sipRegisterAll = Self("sip.register-all-extensions", default: "false", "Keep every extension of the database registered; false = an extension registers while a browser session holds it connected, and sip.unregister-grace seconds after.")
    static let sipUnregisterGrace = Self("sip.unregister-grace", default: "30", "Seconds an extension stays registered after its browser disconnects (a reload or a network change does not lose calls meanwhile).")
    static let sipGuestExtension = Self("sip.guest-extension", default: "", "Extension whose digest credentials answer the platform's challenges to click-to-contact guest calls (the caller's number stays in From); empty = guest calls carry no credentials.")
    static let sipSRTP = Self("sip.srtp", default: "off", "SRTP on the SIP leg, keyed by SDES (RFC 4568, AES_CM_128_HMAC_SHA1_80): off (plain RTP; an offer of RTP/SAVP only gets 488), preferred (offer RTP/AVP with a=crypto, plain RTP with a peer without it) or required (offer RTP/SAVP; a peer without SDES gets 488 or BYE).")
    static let sipDTMFMode = Self("sip.dtmf-mode", default: "rfc4733", "How the browser's DTMF (RTCDTMFSender's RFC 4733 events) reaches the platform: rfc4733 (telephone-event in the RTP) or info (SIP INFO application/dtmf-relay; the SIP SDP then offers no telephone-event).")
    static let sipRTPPortMin = Self("sip.rtp-port-min", default: "30000", "Lowest UDP port of the SIP legs' RTP (one port per call).")
    static let sipRTPPortMax = Self("sip.rtp-port-max", default: "39999", "Highest UDP port of the SIP legs' RTP.")
    static let cmsAllowedNetworks = Self("cms.allowed-networks", default: "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,fe80::/10", list: true, "Client networks (CIDRs) that may reach the administrators' web configuration /cms; any other source gets 404.")
    static let cmsSessionIdleTimeout = Self("cms.session-idle-timeout", default: "1800", "Seconds an unused /cms sign-in lasts.")
    static let cmsSessionLifetime = Self("cms.session-lifetime", default: "43200", "Seconds a /cms sign-in lasts at most, used or not.")
    static let cmsListen = Self("cms.listen", default: "", "Own HTTPS listener of /cms as address:port (IPv6 in brackets), with the same certificate; /cms then answers only there (404 on http.port). Empty = /cms on http.port.")
    static let cmsDrainTimeout = Self("cms.drain-timeout", default: "60", "Seconds \"Restart service\" waits for the calls in progress to end (no new sessions or calls meanwhile) before it ends the rest with BYE and restarts.")
    static let sipTLSVerifyPeer = Self("sip.tls-verify-peer", default: "true", "Check the platform's TLS certificate against the system trust roots and its host name.")

    /// Every key, in the order of `config/tandem.yaml`.
    public static let all: [ConfigurationKey] = [
        .httpListenAddress, .httpPort, .httpSessionLifetime, .httpCORSOrigins, .httpDemo,
        .tlsCertificate, .tlsPrivateKey, .tlsCACertificate, .tlsHostName,
        .storageDataDirectory,
        .logDirectory, .logLevel, .logMaxFiles, .logMaxFileSize,
        .turnEnabled, .turnListenAddresses, .turnListenPort, .turnTLSPort, .turnTransports, .turnRealm,
        .turnAllowedPeers, .turnDeniedPeers, .turnRelayPortMin, .turnRelayPortMax, .turnNonceLifetime,
        .turnUserQuota, .turnTotalQuota, .turnMaxRequestsPerSecond, .turnMaxBPS, .turnThreads, .turnBatchWindow, .turnTLSMinVersion,
        .turnRelayAddresses, .turnExternalAddresses, .turnCredentialTTL, .turnSharedSecret,
        .mediaEnabled, .mediaBindAddress, .mediaAdvertisedAddresses, .mediaPortMin, .mediaPortMax, .mediaSharedPort, .mediaThreads, .mediaBatchWindow,
        .mediaOpusBitrate, .mediaOpusComplexity, .mediaOpusGovernor, .mediaSIPCodec, .mediaPreferPassThrough, .mediaConsentTimeout, .mediaEcho,
        .sipListenAddresses, .sipListenPort, .sipTLSPort, .sipTransports, .sipAdvertisedAddress,
        .sipPlatformPrimary, .sipPlatformSecondary, .sipPlatformTransport, .sipOutboundProxy, .sipDomain,
        .sipRegistrationExpires, .sipKeepAliveInterval, .sipRegistrationsPerSecond, .sipInstanceID, .sipTLSVerifyPeer,
        .sipRegisterAll, .sipUnregisterGrace, .sipGuestExtension, .sipDTMFMode, .sipSRTP, .sipRTPPortMin, .sipRTPPortMax,
        .cmsAllowedNetworks, .cmsListen, .cmsSessionIdleTimeout, .cmsSessionLifetime, .cmsDrainTimeout,
    ]
}
