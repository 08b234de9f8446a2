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
