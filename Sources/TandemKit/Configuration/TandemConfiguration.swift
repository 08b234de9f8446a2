import Logging

/// Tandem's static configuration: what `config/tandem.yaml` and `TANDEM_*` environment
/// variables say (see ``ConfigurationKey/all`` for every key).
///
/// Values under ``TURN-swift.struct/seed`` only seed the database on first start; after
/// that the database is the source of truth for them.
public struct TandemConfiguration: Sendable, Equatable {
    /// Prefix of the environment variables that override the file.
    public static let environmentPrefix = "TANDEM"
    /// The file read when no `--config` is given, relative to the working directory.
    public static let defaultFilePath = "config/tandem.yaml"

    public var http: HTTP
    public var tls: TLS
    public var storage: Storage
    public var log: Log
    public var turn: TURN
    public var media: Media
    public var sip: SIP
    public var cms: CMS

    /// The built-in defaults (the same values as `config/tandem.yaml`).
    public init(
        http: HTTP = HTTP(), tls: TLS = TLS(), storage: Storage = Storage(), log: Log = Log(), turn: TURN = TURN(), media: Media = Media(), sip: SIP = SIP(),
        cms: CMS = CMS()
    ) {
        self.cms = cms
        self.http = http
        self.tls = tls
        self.storage = storage
        self.log = log
        self.turn = turn
        self.media = media
        self.sip = sip
    }

    /// The administrators' web configuration under `/cms`.
    public struct CMS: Sendable, Equatable {
        /// Sources outside these get 404 from /cms.
        public var allowedNetworks: [CIDR] = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10"].compactMap(CIDR.init)
        public var sessionIdleTimeout = 1800
        public var sessionLifetime = 43200
        /// Seconds a restart waits for calls to end.
        public var drainTimeout = 60
        /// The own listener of /cms (nil: /cms is served on http.port).
        public var listen: (address: IPAddress, port: Int)?

        public init() {}

        public static func == (a: CMS, b: CMS) -> Bool {
            a.allowedNetworks == b.allowedNetworks && a.sessionIdleTimeout == b.sessionIdleTimeout && a.sessionLifetime == b.sessionLifetime
                && a.drainTimeout == b.drainTimeout && a.listen?.address == b.listen?.address && a.listen?.port == b.listen?.port
        }
    }

    /// The SIP user agents of the extensions, toward the platform (PBX or SIP trunk).
    public struct SIP: Sendable, Equatable {
        /// A SIP transport (RFC 3261 §18).
        public enum Transport: String, Sendable, Hashable, CaseIterable {
            case udp, tcp, tls
        }

        public var listenAddresses: [IPAddress] = [.ipv4Any]
        public var listenPort = 5060
        public var tlsPort = 5061
        public var transports: [Transport] = [.udp, .tcp]
        public var advertisedAddress = ""
        /// `host[:port]`; empty = no platform.
        public var platformPrimary = ""
        public var platformSecondary = ""
        public var platformTransport: Transport = .udp
        public var outboundProxy = ""
        public var domain = ""
        public var registrationExpires = 600
        public var keepAliveInterval = 30
        public var registrationsPerSecond = 200
        public var instanceID = true
        public var tlsVerifyPeer = true
        public var registerAll = false
        public var unregisterGrace = 30
        public var guestExtension = ""
        public var dtmfMode = "rfc4733"
        /// `off`, `preferred` or `required`: SDES-SRTP on the SIP leg.
        public var srtp = "off"
        public var rtpPortRange: ClosedRange<Int> = 30000...39999

        public init() {}
    }

    /// The WebRTC media engine (ICE-lite, DTLS-SRTP, transcoding).
    public struct Media: Sendable, Equatable {
        public var enabled = true
        public var bindAddress: IPAddress = .ipv4Any
        public var advertisedAddresses: [IPAddress] = []
        public var portRange: ClosedRange<Int> = 40000...49999
        /// 0: a port per leg from `portRange`; else media thread i serves every leg on this port + i.
        public var sharedPort = 0
        public var threads = 0
        public var batchWindowMicroseconds = 0
        public var opusBitrate = 24000
        public var opusComplexity = 5
        public var opusGovernor = true
        public var sipCodec = "pcmu"
        public var preferPassThrough = false
        public var consentTimeout = 30
        public var echo = false

        public init() {}
    }

    /// The HTTPS listener.
    public struct HTTP: Sendable, Equatable {
        public var listenAddress: IPAddress
        /// 1–65535 from configuration; 0 (an ephemeral port) is accepted when set in code.
        public var port: Int
        /// Seconds a browser session lives.
        public var sessionLifetime: Int
        /// Origins allowed cross-origin access to /api/v1 and /webkit (`*` = any).
        public var corsOrigins: [String] = []
        /// The demo application server of /webkit/demo.
        public var demo = false

        public init(listenAddress: IPAddress = .ipv4Any, port: Int = 7443, sessionLifetime: Int = 43200) {
            self.listenAddress = listenAddress
            self.port = port
            self.sessionLifetime = sessionLifetime
        }
    }

    /// Certificate files; all nil means "generate a self-signed certificate".
    public struct TLS: Sendable, Equatable {
        public var certificatePath: String?
        public var privateKeyPath: String?
        public var caCertificatePath: String?
        /// The name clients reach Tandem by (empty: the machine's host name).
        public var hostName: String

        public init(certificatePath: String? = nil, privateKeyPath: String? = nil, caCertificatePath: String? = nil, hostName: String = "") {
            self.certificatePath = certificatePath
            self.privateKeyPath = privateKeyPath
            self.caCertificatePath = caCertificatePath
            self.hostName = hostName
        }

        /// ``hostName``, or the machine's host name when empty.
        public var effectiveHostName: String { hostName.isEmpty ? SelfSignedCertificate.currentHostname() : hostName }
    }

    public struct Storage: Sendable, Equatable {
        public var dataDirectory: String

        public init(dataDirectory: String = "./.tandem/data") {
            self.dataDirectory = dataDirectory
        }
    }

    public struct Log: Sendable, Equatable {
        public var directory: String
        public var level: Logger.Level
        /// Files kept in all, the live one included (≥ 1).
        public var maxFiles: Int
        /// Bytes at which the live file is rotated (≥ 4096).
        public var maxFileSize: Int

        public init(directory: String = "./.tandem/log", level: Logger.Level = .info, maxFiles: Int = 10, maxFileSize: Int = 10_485_760) {
            self.directory = directory
            self.level = level
            self.maxFiles = maxFiles
            self.maxFileSize = maxFileSize
        }
    }

    /// A TURN client transport (RFC 8656 §3.1).
    public enum TURNTransport: String, Sendable, Hashable, CaseIterable {
        case udp, tcp, tls
    }

    /// The TURN relay (RFC 8656).
    public struct TURN: Sendable, Equatable {
        public var enabled: Bool
        public var listenAddresses: [IPAddress]
        /// UDP and TCP port.
        public var listenPort: Int
        /// TLS-over-TCP port.
        public var tlsPort: Int
        public var transports: [TURNTransport]
        public var realm: String
        public var allowedPeers: [CIDR]
        public var deniedPeers: [CIDR]
        public var relayPortRange: ClosedRange<Int>
        /// Seconds.
        public var nonceLifetime: Int
        /// Allocations per username (0 = unlimited).
        public var userQuota: Int
        /// Allocations in all (0 = unlimited).
        public var totalQuota: Int
        /// Per source IP (0 = unlimited).
        public var maxRequestsPerSecond: Int
        /// Relayed bytes per second per allocation, coturn's `max-bps` (0 = unlimited).
        public var maxBytesPerSecond: Int
        /// Datapath threads (0 = one per core).
        public var threads: Int
        /// Receive moderation under load, microseconds (0 = off).
        public var batchWindowMicroseconds: Int
        /// Lowest TLS version accepted on ``tlsPort``: "1.0", "1.1", "1.2" or "1.3".
        public var tlsMinimumVersion: String
        /// First-start values for the database.
        public var seed: Seed

        public init(
            enabled: Bool = true,
            listenAddresses: [IPAddress] = [.ipv4Any],
            listenPort: Int = 3478,
            tlsPort: Int = 5349,
            transports: [TURNTransport] = [.udp, .tcp, .tls],
            realm: String = "tandem",
            allowedPeers: [CIDR] = [],
            deniedPeers: [CIDR] = [],
            relayPortRange: ClosedRange<Int> = 49152...65535,
            nonceLifetime: Int = 600,
            userQuota: Int = 100,
            totalQuota: Int = 10000,
            maxRequestsPerSecond: Int = 500,
            maxBytesPerSecond: Int = 0,
            threads: Int = 0,
            batchWindowMicroseconds: Int = 500,
            tlsMinimumVersion: String = "1.2",
            seed: Seed = Seed()
        ) {
            self.enabled = enabled
            self.listenAddresses = listenAddresses
            self.listenPort = listenPort
            self.tlsPort = tlsPort
            self.transports = transports
            self.realm = realm
            self.allowedPeers = allowedPeers
            self.deniedPeers = deniedPeers
            self.relayPortRange = relayPortRange
            self.nonceLifetime = nonceLifetime
            self.userQuota = userQuota
            self.totalQuota = totalQuota
            self.maxRequestsPerSecond = maxRequestsPerSecond
            self.maxBytesPerSecond = maxBytesPerSecond
            self.threads = threads
            self.batchWindowMicroseconds = batchWindowMicroseconds
            self.tlsMinimumVersion = tlsMinimumVersion
            self.seed = seed
        }

        /// Written to the database on first start only.
        public struct Seed: Sendable, Equatable {
            /// Empty: the host's own non-loopback addresses (``HostAddresses``).
            public var relayAddresses: [IPAddress]
            public var externalAddresses: [ExternalAddressMapping]
            /// Seconds.
            public var credentialTTL: Int
            /// The REST-API shared secret to provision; empty = generate a random one.
            public var sharedSecret: String

            public init(relayAddresses: [IPAddress] = [], externalAddresses: [ExternalAddressMapping] = [], credentialTTL: Int = 600, sharedSecret: String = "") {
                self.relayAddresses = relayAddresses
                self.externalAddresses = externalAddresses
                self.credentialTTL = credentialTTL
                self.sharedSecret = sharedSecret
            }
        }
    }
}
