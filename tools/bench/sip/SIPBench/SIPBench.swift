import Foundation
import SIP

/// Parser benchmark of tools/bench/sip: how many SIP messages a second one core parses
/// (datagram parse, then the checks a UA makes), and serializes, over the messages captured
/// from Kamailio, sipp and baresip (Tests/SIPTests/Fixtures). Each step is bounded in count
/// and time. Prints a table; `--json FILE` writes the figures.
///
///   swift run -c release sip-bench [--fixtures DIR] [--seconds S] [--json FILE]
@main
struct SIPBench {
    static func main() throws {
        var arguments = CommandLine.arguments.dropFirst()
        var directory = "Tests/SIPTests/Fixtures"
        var seconds = 2.0
        var jsonPath: String?
        while let argument = arguments.popFirst() {
            switch argument {
            case "--fixtures": directory = arguments.popFirst() ?? directory
            case "--seconds": seconds = Double(arguments.popFirst() ?? "") ?? seconds
            case "--json": jsonPath = arguments.popFirst()
            default:
                FileHandle.standardError.write(Data("usage: sip-bench [--fixtures DIR] [--seconds S] [--json FILE]\n".utf8))
                exit(2)
            }
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".sip") }.sorted()
        guard !names.isEmpty else { throw BenchError("no .sip fixtures in \(directory)") }
        let messages = try names.map { Array(try Data(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent($0))) }
        let bytes = messages.reduce(0) { $0 + $1.count }

        let parse = measure(seconds: seconds, batch: messages.count) {
            for m in messages {
                guard let message = try? SIPMessage(parsing: m) else { fatalError("a fixture did not parse") }
                try? message.validate()
            }
        }
        let parsed = try messages.map { try SIPMessage(parsing: $0) }
        let serialize = measure(seconds: seconds, batch: parsed.count) {
            for m in parsed { _ = m.serialized() }
        }
        let typed = measure(seconds: seconds, batch: parsed.count) {
            for m in parsed { _ = (m.vias, m.from, m.to, m.cseq, m.callID, m.contacts) }
        }
        let rows: [(String, Double)] = [("parse + validate", parse), ("serialize", serialize), ("typed headers (Via, From, To, CSeq, Call-ID, Contact)", typed)]
        print("| step | messages/s on one core | µs per message |")
        print("| --- | ---: | ---: |")
        for (name, rate) in rows { print("| \(name) | \(Int(rate)) | \(String(format: "%.2f", 1e6 / rate)) |") }
        print("(\(messages.count) captured messages, \(bytes / messages.count) bytes on average)")
        if let jsonPath {
            let json: [String: Any] = ["fixtures": messages.count, "average_bytes": bytes / messages.count, "seconds": seconds,
                                       "parse_validate_per_second": parse, "serialize_per_second": serialize, "typed_headers_per_second": typed]
            try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys]).write(to: URL(fileURLWithPath: jsonPath))
            print("JSON: \(jsonPath)")
        }
    }

    /// Messages per second of `body` (which handles `batch` messages), run for about
    /// `seconds` and at most 10 million messages.
    static func measure(seconds: Double, batch: Int, _ body: () -> Void) -> Double {
        for _ in 0..<100 { body() }  // warm-up
        let clock = ContinuousClock()
        let start = clock.now
        var rounds = 0
        while rounds * batch < 10_000_000 {
            body()
            rounds += 1
            if rounds % 100 == 0, (clock.now - start) >= .milliseconds(Int(seconds * 1000)) { break }
        }
        let elapsed = clock.now - start
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(rounds * batch) / s
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
