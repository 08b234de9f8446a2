import Foundation
import Logging
import Testing

@testable import TandemKit

@Suite("Configuration")
struct ConfigurationTests {
    /// Loads with only the given environment, from a directory without config/tandem.yaml.
    func load(file: String? = nil, _ environment: [String: String] = [:]) async throws -> TandemConfiguration {
        try await TandemConfiguration.load(file: file, environment: environment)
    }

    @Test func builtInDefaultsMatchTheKeyTable() throws {
        let parsed = try TandemConfiguration.parse([:])
        #expect(parsed == TandemConfiguration())
        for key in ConfigurationKey.all {
            #expect(TandemConfiguration().text(of: key) == TandemConfiguration.splitList(key.defaultValue) || TandemConfiguration().text(of: key) == [key.defaultValue], "\(key.name)")
        }
        let defaults = TandemConfiguration()
        #expect(defaults.http.port == 7443)
        #expect(defaults.turn.listenPort == 3478)
        #expect(defaults.turn.tlsPort == 5349)
        #expect(defaults.turn.transports == [.udp, .tcp, .tls])
        #expect(defaults.turn.userQuota == 100)
        #expect(defaults.turn.seed.credentialTTL == 600)
        #expect(defaults.tls.certificatePath == nil)
    }

    @Test func theShippedFileHasTheBuiltInDefaultsAndEveryKey() async throws {
        let path = repositoryRoot + "/config/tandem.yaml"
        #expect(try await load(file: path) == TandemConfiguration())
        let text = try String(contentsOfFile: path, encoding: .utf8)
        for key in ConfigurationKey.all {
            #expect(text.contains("  \(key.leaf):"), "config/tandem.yaml documents \(key.name)")
            #expect(text.contains(key.environmentVariable), "config/tandem.yaml names \(key.environmentVariable)")
        }
    }

    @Test func environmentVariableNames() {
        let names = Dictionary(uniqueKeysWithValues: ConfigurationKey.all.map { ($0.name, $0.environmentVariable) })
        #expect(names["turn.listen-port"] == "TANDEM_TURN_LISTEN_PORT")
        #expect(names["http.listen-address"] == "TANDEM_HTTP_LISTEN_ADDRESS")
        #expect(names["log.max-file-size"] == "TANDEM_LOG_MAX_FILE_SIZE")
        #expect(names["turn.max-requests-per-second"] == "TANDEM_TURN_MAX_REQUESTS_PER_SECOND")
        #expect(Set(names.values).count == names.count)
    }

    @Test func yamlFileAndEnvironmentPrecedence() async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write(
            "tandem.yaml",
            """
            http:
              listen-address: 127.0.0.1
              port: 8443
            log:
              level: debug
            turn:
              listen-port: 3479
              transports: [udp, tcp]
              allowed-peers: ["127.0.0.0/8", "::1"]
              realm: example.org
              relay-addresses: [192.0.2.10, "2001:db8::10"]
              external-addresses: ["192.0.2.10=203.0.113.10"]
              credential-ttl: 3600
            """)
        let fromFile = try await load(file: file)
        #expect(fromFile.http.listenAddress == IPAddress("127.0.0.1"))
        #expect(fromFile.http.port == 8443)
        #expect(fromFile.log.level == .debug)
        #expect(fromFile.turn.listenPort == 3479)
        #expect(fromFile.turn.transports == [.udp, .tcp])
        #expect(fromFile.turn.allowedPeers.map(\.description) == ["127.0.0.0/8", "::1/128"])
        #expect(fromFile.turn.realm == "example.org")
        #expect(fromFile.turn.seed.relayAddresses == [IPAddress("192.0.2.10")!, IPAddress("2001:db8::10")!])
        #expect(fromFile.turn.seed.externalAddresses.map(\.description) == ["192.0.2.10=203.0.113.10"])
        #expect(fromFile.turn.seed.credentialTTL == 3600)
        #expect(fromFile.turn.tlsPort == 5349, "keys absent from the file keep their defaults")

        let overridden = try await load(
            file: file,
            [
                "TANDEM_TURN_LISTEN_PORT": "3480",
                "TANDEM_HTTP_PORT": " 9443 ",
                "TANDEM_TURN_TRANSPORTS": "udp, tls",
                "TANDEM_TURN_ALLOWED_PEERS": "",
                "TANDEM_TURN_DENIED_PEERS": "10.0.0.0/8,192.168.0.0/16",
                "TANDEM_LOG_LEVEL": "WARNING",
                "TANDEM_TURN_ENABLED": "false",
                "OTHER_TURN_LISTEN_PORT": "1",
            ])
        #expect(overridden.turn.listenPort == 3480)
        #expect(overridden.http.port == 9443)
        #expect(overridden.turn.transports == [.udp, .tls])
        #expect(overridden.turn.allowedPeers == [], "an empty variable overrides the file's list with none")
        #expect(overridden.turn.deniedPeers.map(\.description) == ["10.0.0.0/8", "192.168.0.0/16"])
        #expect(overridden.log.level == .warning)
        #expect(overridden.turn.enabled == false)
        #expect(overridden.turn.realm == "example.org")
    }

    @Test func environmentAloneWithoutAFile() async throws {
        let configuration = try await load(["TANDEM_STORAGE_DATA_DIRECTORY": "/var/lib/tandem", "TANDEM_TLS_CERTIFICATE": "/etc/tandem/cert.pem", "TANDEM_TLS_PRIVATE_KEY": "/etc/tandem/key.pem"])
        #expect(configuration.storage.dataDirectory == "/var/lib/tandem")
        #expect(configuration.tls.certificatePath == "/etc/tandem/cert.pem")
        #expect(configuration.tls.privateKeyPath == "/etc/tandem/key.pem")
    }

    @Test func aScalarWhereAListBelongsIsSplitOnCommas() async throws {
        let directory = try TemporaryDirectory()
        let file = try directory.write("c.yaml", "turn:\n  listen-addresses: 127.0.0.1, ::1\n  denied-peers: \"\"\n")
        let configuration = try await load(file: file)
        #expect(configuration.turn.listenAddresses == [IPAddress("127.0.0.1")!, IPAddress("::1")!])
        #expect(configuration.turn.deniedPeers == [])
    }

    @Test func invalidValuesGiveTypedErrors() async throws {
        await #expect(throws: ConfigurationError.invalidPort(key: "turn.listen-port", value: "abc")) {
            try await load(["TANDEM_TURN_LISTEN_PORT": "abc"])
        }
        await #expect(throws: ConfigurationError.invalidPort(key: "http.port", value: "70000")) {
            try await load(["TANDEM_HTTP_PORT": "70000"])
        }
        await #expect(throws: ConfigurationError.invalidIPAddress(key: "http.listen-address", value: "example.org")) {
            try await load(["TANDEM_HTTP_LISTEN_ADDRESS": "example.org"])
        }
        await #expect(throws: ConfigurationError.invalidIPAddress(key: "turn.relay-addresses", value: "0.0.0.0")) {
            try await load(["TANDEM_TURN_RELAY_ADDRESSES": "0.0.0.0"])
        }
        await #expect(throws: ConfigurationError.invalidCIDR(key: "turn.denied-peers", value: "10.0.0.0/40", reason: "'40' is not a prefix length (0–32)")) {
            try await load(["TANDEM_TURN_DENIED_PEERS": "192.168.0.0/16,10.0.0.0/40"])
        }
        await #expect(throws: ConfigurationError.invalidChoice(key: "turn.transports", value: "sctp", allowed: ["udp", "tcp", "tls"])) {
            try await load(["TANDEM_TURN_TRANSPORTS": "udp,sctp"])
        }
        await #expect(throws: ConfigurationError.invalidBoolean(key: "turn.enabled", value: "maybe")) {
            try await load(["TANDEM_TURN_ENABLED": "maybe"])
        }
        await #expect(throws: ConfigurationError.invalidRelayPortRange(min: 60000, max: 50000)) {
            try await load(["TANDEM_TURN_RELAY_PORT_MIN": "60000", "TANDEM_TURN_RELAY_PORT_MAX": "50000"])
        }
        await #expect(throws: ConfigurationError.self) {
            try await load(["TANDEM_TLS_CERTIFICATE": "/x.pem"])
        }
        await #expect(throws: ConfigurationError.self) {
            try await load(["TANDEM_TURN_TLS_PORT": "3478"])
        }
        await #expect(throws: ConfigurationError.self) {
            try await load(["TANDEM_LOG_LEVEL": "loud"])
        }
        await #expect(throws: ConfigurationError.self) {
            try await load(["TANDEM_TURN_EXTERNAL_ADDRESSES": "10.0.0.1=::1"])
        }
        await #expect(throws: ConfigurationError.fileNotFound(path: "/nonexistent/tandem.yaml")) {
            try await load(file: "/nonexistent/tandem.yaml")
        }
        let description = ConfigurationError.invalidPort(key: "turn.listen-port", value: "abc").description
        #expect(description == "turn.listen-port (TANDEM_TURN_LISTEN_PORT): 'abc' is not a port number (1–65535)")
    }

    @Test func malformedFilesAreReported() async throws {
        let directory = try TemporaryDirectory()
        let notMapping = try directory.write("list.yaml", "- a\n- b\n")
        await #expect(throws: ConfigurationError.self) { try await load(file: notMapping) }
        let listForScalar = try directory.write("scalar.yaml", "http:\n  port: [1, 2]\n")
        await #expect(throws: ConfigurationError.self) { try await load(file: listForScalar) }
    }

    @Test func renderedYAMLAndEnvironmentRoundTrip() async throws {
        var configuration = TandemConfiguration()
        configuration.http.listenAddress = IPAddress("::")!
        configuration.turn.allowedPeers = [try CIDR(parsing: "127.0.0.0/8"), try CIDR(parsing: "::1")]
        configuration.turn.seed.externalAddresses = [try ExternalAddressMapping(parsing: "10.0.0.1=198.51.100.1")]
        configuration.turn.realm = #"quote "less" realm"#.replacingOccurrences(of: "\"", with: "")
        configuration.tls = .init(certificatePath: "/etc/tandem/cert.pem", privateKeyPath: "/etc/tandem/key.pem", caCertificatePath: nil)

        let directory = try TemporaryDirectory()
        let file = try directory.write("printed.yaml", configuration.renderYAML())
        #expect(try await load(file: file) == configuration)

        var environment: [String: String] = [:]
        for line in configuration.renderEnvironment().split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            environment[String(parts[0])] = String(parts[1])
        }
        #expect(try await load(environment) == configuration)
        #expect(TandemConfiguration.markdownKeyTable().contains("| `turn.listen-port` | `TANDEM_TURN_LISTEN_PORT` | `3478` |"))
    }

    @Test func storeSeedUsesHostAddressesWhenNoneConfigured() throws {
        var configuration = TandemConfiguration()
        #expect(!configuration.storeSeed().relayAddresses.isEmpty)
        configuration.turn.seed.relayAddresses = [IPAddress("192.0.2.1")!]
        configuration.turn.seed.credentialTTL = 120
        let seed = configuration.storeSeed()
        #expect(seed.relayAddresses == ["192.0.2.1"])
        #expect(seed.credentialTTL == 120)
    }
}

@Suite("Documentation")
struct DocumentationTests {
    @Test func readmeCarriesTheKeyTable() throws {
        let readme = try String(contentsOfFile: repositoryRoot + "/README.md", encoding: .utf8)
        #expect(readme.contains(TandemConfiguration.markdownKeyTable()), "regenerate with `tandem config keys --markdown`")
    }
}
