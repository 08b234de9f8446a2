// The `tandem` command line: `serve`, `turn credentials`, `config print`, `config keys`.
// Everything but argument handling and printing lives in TandemKit.

import ArgumentParser
import Foundation
import Logging
import Prometheus
import Store
import TandemKit

@main
struct TandemCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tandem",
        abstract: "Tandem: a WebRTC-to-SIP media gateway and TURN relay.",
        discussion: """
            Configuration comes from a YAML file (--config, else config/tandem.yaml when it \
            exists, else built-in defaults) with TANDEM_* environment variables taking \
            precedence: key turn.listen-port is TANDEM_TURN_LISTEN_PORT; lists are \
            comma-separated. `tandem config keys` lists every key.
            """,
        subcommands: [Serve.self, Turn.self, Config.self],
        defaultSubcommand: nil)
}

/// The `--config FILE` option shared by the subcommands.
struct ConfigOption: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "YAML configuration file.",
            discussion: "Defaults to config/tandem.yaml in the working directory when it exists, else the built-in defaults. TANDEM_* environment variables override the file.",
            valueName: "file"))
    var config: String?

    func load() async throws -> TandemConfiguration {
        do {
            return try await TandemConfiguration.load(file: config)
        } catch {
            throw CommandError("invalid configuration: \(error)")
        }
    }
}

extension TandemCommand {
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run Tandem: the database, the TURN relay and the HTTPS listener, until SIGTERM or SIGINT.",
            discussion: """
                Logs go to standard output and to <log.directory>/tandem.log (rotated by size). \
                The first start creates <storage.data-directory>/tandem.sqlite with a random TURN \
                shared secret and the OAuth client `default-client-id`, whose generated secret is \
                logged once, with a warning. Without tls.certificate/tls.private-key a self-signed \
                certificate is generated into <storage.data-directory>/tls/ and reused. \
                HTTPS serves /healthz, /readyz and /metrics on http.listen-address:http.port.
                """)

        @OptionGroup var options: ConfigOption

        func run() async throws {
            let configuration = try await options.load()
            let logFile = try TandemLogging.bootstrap(configuration.log)
            defer { logFile.close() }
            let registry = PrometheusCollectorRegistry()
            TandemMetrics.bootstrap(registry)
            let logger = Logger(label: "tandem")
            logger.info("Configuration loaded", metadata: ["file": "\(TandemConfiguration.resolveFile(options.config) ?? "(built-in defaults)")"])
            do {
                try await TandemServer(configuration: configuration, metrics: registry, logger: logger).run()
            } catch {
                logger.critical("Tandem failed", metadata: ["error": "\(error)"])
                throw ExitCode.failure
            }
        }
    }

    struct Turn: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "TURN relay utilities.",
            subcommands: [Credentials.self])

        struct Credentials: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print time-limited TURN credentials signed with the stored shared secret.",
                discussion: """
                    Follows the TURN REST API convention (coturn's use-auth-secret): username \
                    "<unix-expiry>:<user>", password base64(HMAC-SHA1(shared secret, username)). \
                    Opens the database in storage.data-directory (creating and seeding it if this \
                    is the first start). Prints username, password, expiry and TTL, one per line.
                    """)

            @OptionGroup var options: ConfigOption

            @Option(name: .long, help: ArgumentHelp("User name embedded after the expiry; empty or omitted gives a username of just the expiry.", valueName: "name"))
            var user: String?

            @Option(
                name: .long, parsing: .unconditional,
                help: ArgumentHelp(
                    "Credential lifetime in seconds; defaults to the stored credential TTL (turn.credential-ttl on first start).",
                    discussion: "Zero or negative gives a credential that has already expired (-60: a minute ago), to test refusal.",
                    valueName: "seconds"))
            var ttl: Int?

            func validate() throws {
                if let ttl, abs(ttl) > 10 * 365 * 86400 { throw ValidationError("--ttl must be within ten years") }
                if let user, user.contains(where: { $0.isNewline }) { throw ValidationError("--user must not contain line breaks") }
            }

            func run() async throws {
                let configuration = try await options.load()
                TandemLogging.bootstrapStandardError(level: .warning)
                let logger = Logger(label: "tandem")
                let store = try Store.open(
                    directory: configuration.storage.dataDirectory, seed: configuration.storeSeed(logger: logger), logger: logger)
                defer { try? store.close() }
                TandemServer.reportInitialCredentials(of: store, logger: logger)
                let settings = try await store.turnSettings()
                let credential = TURNCredentials.issue(settings: settings, user: user, ttl: ttl)
                let expiry = ISO8601DateFormatter().string(from: credential.expiry)
                print("username: \(credential.username)")
                print("password: \(credential.password)")
                print("expires:  \(expiry)")
                print("ttl:      \(ttl ?? settings.credentialTTL)")
            }
        }
    }

    struct Config: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Inspect the configuration.",
            subcommands: [Print.self, Keys.self])

        enum Format: String, ExpressibleByArgument, CaseIterable {
            case yaml, env
        }

        struct Print: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Print the effective configuration (file + environment + defaults), validated.",
                discussion: """
                    The YAML output is itself a valid configuration file. No configuration key \
                    holds a secret: the TURN shared secret and OAuth client secrets live in the \
                    database only. Exits non-zero with the offending key when the configuration is invalid.
                    """)

            @OptionGroup var options: ConfigOption

            @Option(name: .long, help: "Output format: yaml (a configuration file) or env (TANDEM_* variables).")
            var format: Format = .yaml

            func run() async throws {
                let configuration = try await options.load()
                switch format {
                case .yaml:
                    print("# Effective configuration (source: \(TandemConfiguration.resolveFile(options.config) ?? "built-in defaults") + TANDEM_* environment)")
                    print(configuration.renderYAML(), terminator: "")
                case .env:
                    print(configuration.renderEnvironment(), terminator: "")
                }
            }
        }

        struct Keys: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List every configuration key with its environment variable, default and meaning.")

            @Flag(name: .long, help: "Print a Markdown table (as in README.md).")
            var markdown = false

            func run() {
                if markdown {
                    print(TandemConfiguration.markdownKeyTable(), terminator: "")
                    return
                }
                for key in ConfigurationKey.all {
                    let defaultText = key.defaultValue.isEmpty ? "(empty)" : key.defaultValue
                    print("\(key.name)  [\(key.environmentVariable)]  default: \(defaultText)\(key.isSeed ? "  (first start only)" : "")")
                    print("    \(key.summary)")
                }
            }
        }
    }
}

/// An error the CLI reports as `Error: <message>` with exit status 1 (no usage text).
struct CommandError: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}
