// `tandem admin`: the administrator accounts of /cms, created and reset on the host itself
// (there is no default password, and /cms cannot make the first account).

import Admin
import ArgumentParser
import Foundation
import Store

#if canImport(Glibc)
import Glibc
#endif

extension TandemCommand {
    struct AdminCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "admin",
            abstract: "Manage the administrators of the web configuration (/cms).",
            discussion: """
                Passwords are hashed with scrypt (N=2^17, r=8, p=1) and at least \(PasswordHash.minimumPasswordLength) \
                characters long. They are asked for twice on the terminal, without echo, or read from \
                the first line of standard input with --password-stdin.
                """,
            subcommands: [Create.self, ResetPassword.self, List.self, Remove.self])

        /// Reads a new password: one line of standard input, or twice from the terminal.
        static func readNewPassword(fromStandardInput: Bool) throws -> String {
            let password: String
            if fromStandardInput {
                guard let line = readLine(strippingNewline: true) else { throw CommandError("no password on standard input") }
                password = line
            } else {
                guard isatty(STDIN_FILENO) == 1 else { throw CommandError("standard input is not a terminal: use --password-stdin") }
                password = try promptWithoutEcho("Password: ")
                guard try promptWithoutEcho("Repeat the password: ") == password else { throw CommandError("the two passwords differ") }
            }
            guard password.count >= PasswordHash.minimumPasswordLength else {
                throw CommandError("the password must be at least \(PasswordHash.minimumPasswordLength) characters long")
            }
            guard password.utf8.count <= PasswordHash.maximumPasswordLength else {
                throw CommandError("the password must be at most \(PasswordHash.maximumPasswordLength) bytes long")
            }
            return password
        }

        /// Reads a new password, hashes it, and writes it with `write` (creating or resetting
        /// the account), with an audit entry.
        static func writePassword(_ options: ConfigOption, name: String, passwordStdin: Bool, audit: String,
                                  _ write: (Store, String) async throws -> Void) async throws {
            let password = try readNewPassword(fromStandardInput: passwordStdin)
            let store = try await Extensions.openStore(options)
            defer { try? store.close() }
            do {
                try await write(store, try PasswordHash.make(password).description)
                try await store.appendAudit(account: nil, source: "cli", action: audit, detail: "account \(name)")
            } catch let error as StoreError {
                throw CommandError(error.description)
            }
        }

        /// Prompts on standard error and reads a line with the terminal's echo off.
        static func promptWithoutEcho(_ prompt: String) throws -> String {
            FileHandle.standardError.write(Data(prompt.utf8))
            var saved = termios()
            tcgetattr(STDIN_FILENO, &saved)
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSANOW, &quiet)
            defer {
                tcsetattr(STDIN_FILENO, TCSANOW, &saved)
                FileHandle.standardError.write(Data("\n".utf8))
            }
            guard let line = readLine(strippingNewline: true) else { throw CommandError("no password given") }
            return line
        }

        struct Create: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Create an administrator: tandem admin create NAME [--password-stdin].")

            @OptionGroup var options: ConfigOption
            @Argument(help: "The account name (letters, digits, . _ @ -).") var name: String
            @Flag(name: .long, help: "Read the password from the first line of standard input.") var passwordStdin = false

            func run() async throws {
                try await AdminCommand.writePassword(options, name: name, passwordStdin: passwordStdin, audit: "admin created") { store, hash in
                    try await store.createAdminAccount(name: name, passwordHash: hash)
                }
                print("created administrator \(name): sign in at https://<host>:<http.port>/cms/")
            }
        }

        struct ResetPassword: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                commandName: "reset-password",
                abstract: "Set a new password for an administrator; its open sessions end.")

            @OptionGroup var options: ConfigOption
            @Argument(help: "The account name.") var name: String
            @Flag(name: .long, help: "Read the password from the first line of standard input.") var passwordStdin = false

            func run() async throws {
                try await AdminCommand.writePassword(options, name: name, passwordStdin: passwordStdin, audit: "password reset") { store, hash in
                    try await store.setAdminPassword(name: name, passwordHash: hash)
                }
                print("reset the password of \(name); its sessions have ended")
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "List the administrators.")

            @OptionGroup var options: ConfigOption

            func run() async throws {
                let store = try await Extensions.openStore(options)
                defer { try? store.close() }
                let accounts = try await store.adminAccounts()
                let format = ISO8601DateFormatter()
                print("account\tcreated\tpassword changed")
                for a in accounts { print("\(a.name)\t\(format.string(from: a.createdAt))\t\(format.string(from: a.passwordChangedAt))") }
                print("\(accounts.count) administrator\(accounts.count == 1 ? "" : "s")")
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Remove an administrator (its sessions end).")

            @OptionGroup var options: ConfigOption
            @Argument(help: "The account name.") var name: String

            func run() async throws {
                let store = try await Extensions.openStore(options)
                defer { try? store.close() }
                guard try await store.deleteAdminAccount(name: name) else { throw CommandError("no administrator named \(name)") }
                try await store.appendAudit(account: nil, source: "cli", action: "admin removed", detail: "account \(name)")
                print("removed administrator \(name)")
            }
        }
    }
}
