#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Synchronization

/// A log file rotated by size: `tandem.log` is live; when a write would take it past
/// `maxFileSize` it becomes `tandem.log.1`, `.1` becomes `.2`, and so on, keeping
/// `maxFiles` files in all (the oldest is deleted).
///
/// Thread-safe: every write is one `write(2)` under a mutex, so lines never interleave and
/// memory stays bounded (nothing is queued). Written by hand because swift-log ships no
/// file handler and the ecosystem's are either unmaintained or pull in large frameworks.
public final class RotatingLogFile: Sendable {
    public let directory: String
    public let baseName: String
    /// Size in bytes at which the live file rotates.
    public var maxFileSize: Int { state.withLock { $0.maxFileSize } }
    /// Files kept in all, the live one included.
    public var maxFiles: Int { state.withLock { $0.maxFiles } }

    private struct State: ~Copyable {
        var descriptor: Int32
        var size: Int
        var maxFileSize: Int
        var maxFiles: Int
    }

    private let state: Mutex<State>

    /// Opens (creating the directory and file when absent) `directory/baseName` for appending.
    public init(directory: String, baseName: String = "tandem.log", maxFileSize: Int, maxFiles: Int) throws {
        precondition(maxFileSize > 0 && maxFiles > 0, "maxFileSize and maxFiles must be positive")
        self.directory = directory
        self.baseName = baseName
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = URL(fileURLWithPath: directory).appendingPathComponent(baseName).path
        let descriptor = try Self.openForAppend(path)
        var status = stat()
        let size = fstat(descriptor, &status) == 0 ? Int(status.st_size) : 0
        self.state = Mutex(State(descriptor: descriptor, size: size, maxFileSize: maxFileSize, maxFiles: maxFiles))
    }

    /// Changes the retention while running: files past the new count are deleted at once,
    /// the new size applies from the next write.
    public func setRetention(maxFiles: Int, maxFileSize: Int) {
        precondition(maxFileSize > 0 && maxFiles > 0, "maxFileSize and maxFiles must be positive")
        state.withLock { state in
            let before = state.maxFiles
            state.maxFiles = maxFiles
            state.maxFileSize = maxFileSize
            if maxFiles < before {
                for index in maxFiles..<max(before, maxFiles) { unlink(rotatedPath(index)) }
            }
        }
    }

    /// The live file and the rotated ones that exist, newest first.
    public func existingPaths() -> [String] {
        let count = maxFiles
        return ([path] + (1..<max(count, 1)).map(rotatedPath)).filter { FileManager.default.fileExists(atPath: $0) }
    }

    deinit {
        state.withLock { state in
            if state.descriptor >= 0 { systemClose(state.descriptor) }
        }
    }

    /// The live file's path.
    public var path: String { URL(fileURLWithPath: directory).appendingPathComponent(baseName).path }

    /// The path of rotated file `index` (1 is the newest).
    public func rotatedPath(_ index: Int) -> String { path + ".\(index)" }

    /// Appends `line` (which should end with a newline), rotating first when needed.
    /// Errors are swallowed: logging must never take the process down.
    public func write(_ line: String) {
        var bytes = Array(line.utf8)
        state.withLock { state in
            guard state.descriptor >= 0 else { return }
            if state.size > 0, state.size + bytes.count > state.maxFileSize {
                rotate(&state)
            }
            let written = bytes.withUnsafeMutableBytes { raw -> Int in
                var offset = 0
                while offset < raw.count {
                    let result = systemWrite(state.descriptor, raw.baseAddress! + offset, raw.count - offset)
                    if result < 0 {
                        if errno == EINTR { continue }
                        break
                    }
                    offset += result
                }
                return offset
            }
            state.size += written
        }
        bytes.removeAll()
    }

    /// Closes the live file; later writes are dropped.
    public func close() {
        state.withLock { state in
            if state.descriptor >= 0 { systemClose(state.descriptor) }
            state.descriptor = -1
        }
    }

    private func rotate(_ state: inout State) {
        systemClose(state.descriptor)
        state.descriptor = -1
        let maxFiles = state.maxFiles
        if maxFiles > 1 {
            unlink(rotatedPath(maxFiles - 1))
            var index = maxFiles - 2
            while index >= 1 {
                rename(rotatedPath(index), rotatedPath(index + 1))
                index -= 1
            }
            rename(path, rotatedPath(1))
        } else {
            unlink(path)
        }
        if let descriptor = try? Self.openForAppend(path) {
            state.descriptor = descriptor
        }
        state.size = 0
    }

    private static func openForAppend(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else {
            throw LogFileError.cannotOpen(path: path, reason: String(cString: strerror(errno)))
        }
        return descriptor
    }
}

/// The log file could not be opened.
public enum LogFileError: Error, Equatable, Sendable, CustomStringConvertible {
    case cannotOpen(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let reason): "cannot open log file \(path): \(reason)"
        }
    }
}

private func systemClose(_ descriptor: Int32) {
    #if canImport(Glibc)
    _ = Glibc.close(descriptor)
    #elseif canImport(Musl)
    _ = Musl.close(descriptor)
    #elseif canImport(Darwin)
    _ = Darwin.close(descriptor)
    #endif
}

private func systemWrite(_ descriptor: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(descriptor, pointer, count)
    #elseif canImport(Musl)
    Musl.write(descriptor, pointer, count)
    #elseif canImport(Darwin)
    Darwin.write(descriptor, pointer, count)
    #endif
}
