// `tandem config export|import`: the versioned JSON file of the /cms export page, from the
// command line.

import ArgumentParser
import Foundation
import Store

extension TandemCommand.Config {
    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the extensions and/or the configuration without secrets as a versioned JSON file.",
            discussion: "Without --extensions or --configuration both are written. The extensions carry their digest passwords: keep the file safe.")

        @OptionGroup var options: ConfigOption
        @Flag(name: .long, help: "Include the extensions.") var extensions = false
        @Flag(name: .customLong("configuration"), help: "Include the services and the TURN TTL, relay and external addresses (no secrets).") var settings = false
        @Option(name: .shortAndLong, help: ArgumentHelp("Write here instead of standard output.", valueName: "file")) var output: String?

        func run() async throws {
            let store = try await TandemCommand.Extensions.openStore(options)
            defer { try? store.close() }
            let both = !extensions && !settings
            let document = try await store.export(extensions: both || extensions, configuration: both || settings)
            let data = document.encoded() + Data("\n".utf8)
            if let output {
                guard FileManager.default.createFile(atPath: output, contents: data, attributes: [.posixPermissions: 0o600]) else {
                    throw CommandError("cannot write \(output)")
                }
            } else {
                FileHandle.standardOutput.write(data)
            }
            try await store.appendAudit(account: nil, source: "cli", action: "exported", detail: both ? "extensions and configuration" : extensions ? "extensions" : "configuration")
        }
    }

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import an export file: the database then holds what the file holds (extensions or services absent from it are removed).",
            discussion: "The whole file is checked first and the change is printed; --dry-run stops there. The change is applied in one transaction or not at all.")

        @OptionGroup var options: ConfigOption
        @Argument(help: ArgumentHelp("The export file (- for standard input).", valueName: "file")) var file: String
        @Flag(name: .long, help: "Only print what would change.") var dryRun = false

        func run() async throws {
            let bytes: Data
            if file == "-" {
                bytes = FileHandle.standardInput.readDataToEndOfFile()
            } else {
                guard let attributes = try? FileManager.default.attributesOfItem(atPath: file), let size = attributes[.size] as? Int else {
                    throw CommandError("cannot read \(file)")
                }
                guard size <= TransferDocument.maximumSize, let data = FileManager.default.contents(atPath: file) else {
                    throw CommandError("\(file): \(TransferDocument.Problem.tooLarge(limit: TransferDocument.maximumSize))")
                }
                bytes = data
            }
            let document: TransferDocument
            do { document = try TransferDocument.parse(bytes) } catch { throw CommandError("\(file): \(error)") }
            let store = try await TandemCommand.Extensions.openStore(options)
            defer { try? store.close() }
            let plan = try await store.importPlan(document)
            print(Self.describe(plan))
            guard !dryRun, !plan.isEmpty else { return }
            do {
                try await store.apply(document, expecting: plan.basis)
            } catch let error as StoreError {
                throw CommandError(error.description)
            }
            try await store.appendAudit(account: nil, source: "cli", action: "imported", detail: file)
            print("imported")
        }

        static func describe(_ plan: ImportPlan) -> String {
            func line(_ name: String, _ c: ImportPlan.Change) -> String {
                func list(_ l: [String]) -> String { l.isEmpty ? "" : " (" + l.prefix(10).joined(separator: ", ") + (l.count > 10 ? ", …" : "") + ")" }
                return "\(name): \(c.added.count) added\(list(c.added)), \(c.changed.count) changed\(list(c.changed)), \(c.removed.count) removed\(list(c.removed))"
            }
            var lines: [String] = []
            if let e = plan.extensions { lines.append(line("extensions", e)) }
            if let s = plan.services { lines.append(line("services", s)) }
            if let t = plan.turn { lines.append("turn: " + (t.isEmpty ? "no change" : t.joined(separator: "; "))) }
            if plan.isEmpty { lines.append("nothing to change") }
            return lines.joined(separator: "\n")
        }
    }
}
