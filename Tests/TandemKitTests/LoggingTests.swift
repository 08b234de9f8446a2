import Foundation
import Logging
import Testing

@testable import TandemKit

@Suite("Rotating log file")
struct LoggingTests {
    @Test func rotatesBySizeAndKeepsMaxFiles() throws {
        let directory = try TemporaryDirectory()
        let file = try RotatingLogFile(directory: directory.path + "/log", maxFileSize: 100, maxFiles: 3)
        defer { file.close() }
        let line = String(repeating: "x", count: 39) + "\n"  // 40 bytes: two lines per file
        for index in 0..<9 {
            file.write("\(index)" + line.dropFirst())
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path + "/log").sorted()
        #expect(names == ["tandem.log", "tandem.log.1", "tandem.log.2"])
        let live = try String(contentsOfFile: file.path, encoding: .utf8)
        let newest = try String(contentsOfFile: file.rotatedPath(1), encoding: .utf8)
        let oldest = try String(contentsOfFile: file.rotatedPath(2), encoding: .utf8)
        #expect(live.hasPrefix("8"))
        #expect(newest.split(separator: "\n").map { $0.prefix(1) } == ["6", "7"])
        #expect(oldest.split(separator: "\n").map { $0.prefix(1) } == ["4", "5"])
        for path in [file.path, file.rotatedPath(1), file.rotatedPath(2)] {
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0
            #expect(size <= 100)
        }
    }

    @Test func appendsAcrossReopenAndKeepsOneFileWhenMaxFilesIsOne() throws {
        let directory = try TemporaryDirectory()
        do {
            let file = try RotatingLogFile(directory: directory.path, maxFileSize: 1000, maxFiles: 1)
            file.write("first\n")
            file.close()
            file.write("dropped after close\n")
        }
        let file = try RotatingLogFile(directory: directory.path, maxFileSize: 10, maxFiles: 1)
        file.write("second\n")
        file.write("third\n")
        file.close()
        #expect(try String(contentsOfFile: file.path, encoding: .utf8) == "third\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["tandem.log"])
    }

    @Test func concurrentWritersNeverInterleaveLines() async throws {
        let directory = try TemporaryDirectory()
        let file = try RotatingLogFile(directory: directory.path, maxFileSize: 1 << 20, maxFiles: 2)
        await withTaskGroup(of: Void.self) { group in
            for writer in 0..<8 {
                group.addTask {
                    for index in 0..<200 { file.write("writer-\(writer) line-\(index) " + String(repeating: "z", count: 100) + "\n") }
                }
            }
        }
        file.close()
        let lines = try String(contentsOfFile: file.path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1600)
        #expect(lines.allSatisfy { $0.hasPrefix("writer-") && $0.hasSuffix(String(repeating: "z", count: 100)) })
    }

    @Test func handlerFormatsLevelLabelMessageAndMetadata() throws {
        let directory = try TemporaryDirectory()
        let file = try RotatingLogFile(directory: directory.path, maxFileSize: 1 << 20, maxFiles: 2)
        var logger = Logger(label: "tandem.test") { label in RotatingFileLogHandler(label: label, file: file, level: .info) }
        logger[metadataKey: "node"] = "a"
        logger.debug("hidden")
        logger.notice("Opened database", metadata: ["path": "/x"])
        file.close()
        let text = try String(contentsOfFile: file.path, encoding: .utf8)
        #expect(!text.contains("hidden"))
        let line = try #require(text.split(separator: "\n").first)
        #expect(line.hasSuffix(" notice tandem.test: Opened database node=a path=/x"))
        #expect(line.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z .*/) != nil)
    }
}

@Suite("Log levels and diagnostics")
struct LogLevelsTests {
    @Test func eachSubsystemHasItsLevelAndTheLowestIsKept() {
        let levels = LogLevels(default: .info)
        #expect(levels.level(for: "SIPUA") == .info && levels.lowestLevel == .info)
        levels.set(default: .warning, bySource: ["SIPUA": .debug])
        #expect(levels.level(for: "SIPUA") == .debug && levels.level(for: "TURN") == .warning)
        #expect(levels.lowestLevel == .debug, "handlers must let debug reach the filter")
        levels.set(default: .error, bySource: [:])
        #expect(levels.lowestLevel == .error && levels.level(for: "SIPUA") == .error)
    }

    @Test func theFilterPassesOnlyWhatTheSubsystemsLevelAllows() throws {
        let directory = try TemporaryDirectory()
        let file = try RotatingLogFile(directory: directory.path, maxFileSize: 1 << 20, maxFiles: 2)
        let levels = LogLevels(default: .warning)
        levels.set(default: .warning, bySource: ["Chosen": .debug])
        let handler = LevelFilterLogHandler(inner: RotatingFileLogHandler(label: "t", file: file, level: .trace), levels: levels)
        let logger = Logger(label: "t", factory: { _ in handler })
        logger.debug("kept", source: "Chosen")
        logger.info("dropped", source: "Other")
        logger.warning("also kept", source: "Other")
        let text = try String(contentsOfFile: file.path, encoding: .utf8)
        #expect(text.contains("kept") && text.contains("also kept") && !text.contains("dropped"))
    }

    @Test func retentionChangesWhileRunning() throws {
        let directory = try TemporaryDirectory()
        let file = try RotatingLogFile(directory: directory.path, maxFileSize: 100, maxFiles: 5)
        for i in 0..<20 { file.write("line \(i) " + String(repeating: "x", count: 60) + "\n") }
        #expect(file.existingPaths().count == 5)
        file.setRetention(maxFiles: 2, maxFileSize: 100)
        #expect(file.existingPaths().count == 2, "files past the new count are gone at once")
        #expect(!FileManager.default.fileExists(atPath: file.rotatedPath(2)))
    }

    @Test func secretsAreScrubbedFromEveryLine() {
        let text = "a shared secret abcdef0123456789 here\nclient-id=x client-secret=s3cr3t-value other=1\npassword=hunter2"
        let out = DiagnosticsArchive.scrub(text, ["abcdef0123456789"])
        #expect(!out.contains("abcdef0123456789") && !out.contains("s3cr3t-value") && !out.contains("hunter2"))
        #expect(out.contains("client-secret=<redacted> other=1"))
    }
}
