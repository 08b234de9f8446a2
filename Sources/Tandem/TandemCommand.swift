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
        subcommands: [Serve.self, Extensions.self, Services.self, Turn.self, Config.self, AdminCommand.self],
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
            let logging = try TandemLogging.bootstrap(configuration.log)
            defer { logging.file.close() }
            let registry = PrometheusCollectorRegistry()
            TandemMetrics.bootstrap(registry)
            let logger = Logger(label: "tandem")
            logger.info("Configuration loaded", metadata: ["file": "\(TandemConfiguration.resolveFile(options.config) ?? "(built-in defaults)")"])
            let restart: Bool
            do {
                restart = try await TandemServer(configuration: configuration, metrics: registry, logger: logger, logging: logging).run()
            } catch {
                logger.critical("Tandem failed", metadata: ["error": "\(error)"])
                throw ExitCode.failure
            }
            if restart { try Self.startAgain(logging: logging) }
        }

        /// After "Restart service": under systemd (INVOCATION_ID set) exit 75 so the unit's
        /// `Restart=on-failure` starts it; otherwise re-execute this binary with the same
        /// arguments and environment (same PID; every socket was closed by the shutdown).
        static func startAgain(logging: LoggingControl) throws {
            logging.file.close()
            if ProcessInfo.processInfo.environment["INVOCATION_ID"] != nil { throw ExitCode(75) }
            let arguments = CommandLine.arguments
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
            execv("/proc/self/exe", &argv)
            // Only reached when execv failed.
            throw ExitCode(75)
        }
    }

    struct Extensions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage the extensions Tandem registers with the platform (PBX or SIP trunk).",
            discussion: """
                Extensions live in the database in storage.data-directory. A running `tandem serve` \
                picks up changes within a few seconds: added extensions register, removed ones unregister.
                """,
            subcommands: [Add.self, List.self, Remove.self])

        /// Opens the store with the configuration's seed, quietly.
        static func openStore(_ options: ConfigOption) async throws -> Store {
            let configuration = try await options.load()
            TandemLogging.bootstrapStandardError(level: .warning)
            let logger = Logger(label: "tandem")
            let store = try Store.open(directory: configuration.storage.dataDirectory, seed: configuration.storeSeed(logger: logger), logger: logger)
            TandemServer.reportInitialCredentials(of: store, logger: logger)
            return store
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Add extensions: a number, a range first-last, or a comma-separated list of both.",
                discussion: """
                    Example: tandem extensions add 3000-3099 --digest --username 3000 --password pw3000 \
                    --realm pbx.example.com --increment gives extension 3042 the username 3042 and \
                    the password pw3042. Without --increment every extension shares the credentials; \
                    without --username each uses its own number. Refuses extensions that exist unless --replace.
                    """)

            @OptionGroup var options: ConfigOption
            @Argument(help: ArgumentHelp("Extensions: 3001, 3000-3099, or 3000-3009,3100.", valueName: "extensions"))
            var extensions: String
            @Flag(name: .long, help: "Authenticate with digest (RFC 8760: MD5, SHA-256, SHA-512-256).")
            var digest = false
            @Option(name: .long, help: ArgumentHelp("Digest username (default: the extension number).", valueName: "name"))
            var username: String?
            @Option(name: .long, help: ArgumentHelp("Digest password.", valueName: "password"))
            var password: String?
            @Option(name: .long, help: ArgumentHelp("Realm the credentials belong to (default: whichever the platform names).", valueName: "realm"))
            var realm = ""
            @Flag(name: .long, help: "Count the trailing number of the username and password up along the range.")
            var increment = false
            @Flag(name: .long, help: "Overwrite extensions that exist.")
            var replace = false

            func validate() throws {
                if !digest, username != nil || password != nil { throw ValidationError("--username and --password need --digest") }
                if digest, password == nil { throw ValidationError("--digest needs --password") }
            }

            func run() async throws {
                let records: [ExtensionRecord]
                do {
                    records = try ExtensionProvisioning.records(
                        numbers: try ExtensionProvisioning.numbers(extensions), digest: digest, username: username, password: password, realm: realm, increment: increment)
                } catch {
                    throw CommandError("\(error)")
                }
                let store = try await Extensions.openStore(options)
                defer { try? store.close() }
                do {
                    try await store.addExtensions(records, replace: replace)
                } catch let error as StoreError {
                    throw CommandError(error.description)
                }
                print("added \(records.count) extension\(records.count == 1 ? "" : "s"): \(records.first!.number)\(records.count > 1 ? " … \(records.last!.number)" : "")")
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the extensions: number, authentication, digest username and realm (passwords are not shown).")

            @OptionGroup var options: ConfigOption

            func run() async throws {
                let store = try await Extensions.openStore(options)
                defer { try? store.close() }
                let records = try await store.extensions()
                print("extension\tauth\tusername\trealm")
                for r in records {
                    print("\(r.number)\t\(r.authentication.rawValue)\t\(r.digestUsername.isEmpty ? "-" : r.digestUsername)\t\(r.realm.isEmpty ? "-" : r.realm)")
                }
                print("\(records.count) extension\(records.count == 1 ? "" : "s")")
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove extensions (a number, a range, or a list); a running server unregisters them.")

            @OptionGroup var options: ConfigOption
            @Argument(help: ArgumentHelp("Extensions: 3001, 3000-3099, or 3000-3009,3100.", valueName: "extensions"))
            var extensions: String

            func run() async throws {
                let numbers: [String]
                do { numbers = try ExtensionProvisioning.numbers(extensions) } catch { throw CommandError("\(error)") }
                let store = try await Extensions.openStore(options)
                defer { try? store.close() }
                let removed = try await store.removeExtensions(numbers)
                print("removed \(removed) extension\(removed == 1 ? "" : "s")")
            }
        }
    }

    struct Services: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Manage the services click-to-contact guests may call: a key the web page names, a number on the platform.",
            discussion: "A guest session (POST /api/v1/sessions with {\"guest\": {\"from\": …, \"destination\": KEY}}) may call only its service's number.",
            subcommands: [Add.self, List.self, Remove.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Add or replace a service: tandem services add support 2000 --name \"Customer support\".")

            @OptionGroup var options: ConfigOption
            @Argument(help: "The key web pages name (letters, digits, - _ .).") var key: String
            @Argument(help: "The number it calls on the platform.") var number: String
            @Option(name: .long, help: "The name shown to callers.") var name = ""

            func run() async throws {
                let store = try await Extensions.openStore(options)
                defer { try? store.close() }
                do { try await store.putService(ServiceRecord(key: key, number: number, displayName: name)) } catch let error as StoreError {
                    throw CommandError(error.description)
                }
                print("service \(key) calls \(number)")
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the services: key, number, name.")

            @OptionGroup var options: ConfigOption

            func run() async throws {
                let store = try await Extensions.openStore(options)
                defer { try? store.close() }
                let services = try await store.services()
                print("service\tnumber\tname")
                for s in services { print("\(s.key)\t\(s.number)\t\(s.displayName.isEmpty ? "-" : s.displayName)") }
                print("\(services.count) service\(services.count == 1 ? "" : "s")")
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove a service (its guest sessions end).")

            @OptionGroup var options: ConfigOption
            @Argument(help: "The service's key.") var key: String

            func run() async throws {
                let store = try await Extensions.openStore(options)
                defer { try? store.close() }
                guard try await store.removeService(key: key) else { throw CommandError("no service \(key)") }
                print("removed service \(key)")
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
            abstract: "Inspect the configuration; export and import extensions and runtime settings between servers.",
            subcommands: [Print.self, Keys.self, Export.self, Import.self])

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
