// The gateway mode of media-load, for tools/bench/calls: N browsers that each hold a session
// for one extension (POST /api/v1/sessions with the bench's OAuth token), keep its
// signalling socket open (/webkit/ws), and answer every call Tandem offers them (a call from
// SIP) as a browser does: Opus, ICE as the controlling agent, DTLS, SRTP, 20 ms packets in
// real time both ways. Tandem's "ended" ends the call here too.
//
// Reads commands on standard input: "mark" starts the measured window, "report" prints the
// counts since the mark as one JSON line, "quit" (or the end of input) ends every session.

import Datapath
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import WSClient
import WebRTC

enum GatewayMode {
    struct Session: Sendable {
        let extensionNumber: String
        let token: String
        let websocketURL: String
    }

    /// Counters the signalling tasks share with the main thread.
    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var values: [String: Int] = [:]
        func add(_ key: String, _ n: Int = 1) { lock.lock(); values[key, default: 0] += n; lock.unlock() }
        func get(_ key: String) -> Int { lock.lock(); defer { lock.unlock() }; return values[key] ?? 0 }
        var all: [String: Int] { lock.lock(); defer { lock.unlock() }; return values }
    }

    static func run(api: String, token: String, extensions: [String], bind: String, loop: DatapathLoop, driver: LoopBound<Driver>) throws {
        let identity = try DTLSIdentity(commonName: "media-load")
        // Sessions, a few at a time (curl, as an application server would call the API).
        var sessions: [Session] = []
        for chunk in stride(from: 0, to: extensions.count, by: 16).map({ Array(extensions[$0..<min($0 + 16, extensions.count)]) }) {
            let made = Mutex2<[Session]>([])
            let failures = Mutex2<[String]>([])
            let group = DispatchGroup()
            for ext in chunk {
                group.enter()
                DispatchQueue.global().async {
                    defer { group.leave() }
                    do {
                        let text = try CallSetup.post(#"{"extension":"\#(ext)"}"#, to: api + "/api/v1/sessions",
                                                      headers: ["Content-Type: application/json", "Authorization: Bearer \(token)"])
                        guard let object = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                              let token = object["token"] as? String, let url = object["websocketURL"] as? String else {
                            throw SetupError("session answer without token/websocketURL: \(text)")
                        }
                        made.with { $0.append(Session(extensionNumber: ext, token: token, websocketURL: url)) }
                    } catch {
                        failures.with { $0.append("\(ext): \(error)") }
                    }
                }
            }
            group.wait()
            if let first = failures.with({ $0.first }) { throw SetupError(first) }
            sessions += made.with { $0 }
        }
        let tally = Tally()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none
        let tlsConfiguration = tls
        let logger = Logger(label: "media-load")
        let index = Mutex2(0)
        let stop = Mutex2(false)
        // One signalling task per session, on NIO's threads; media stays on the load loop.
        for session in sessions {
            Task.detached {
                do {
                    try await WebSocketClient.connect(url: session.websocketURL + "?token=" + session.token,
                                                      configuration: .init(maxFrameSize: 1 << 16, sniHostname: "localhost"), tlsConfiguration: tlsConfiguration, logger: logger) { inbound, outbound, _ in
                        let pinger = Task {
                            while !Task.isCancelled {
                                try await Task.sleep(for: .seconds(20))
                                try await outbound.write(.text(#"{"type":"ping"}"#))
                            }
                        }
                        defer { pinger.cancel() }
                        for try await message in inbound.messages(maxSize: 1 << 16) {
                            guard case .text(let text) = message, let frame = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                                  let type = frame["type"] as? String else { continue }
                            switch type {
                            case "registration":
                                if frame["state"] as? String == "registered" { tally.add("registered") }
                            case "incoming":
                                guard let call = frame["call"] as? String, let sdp = frame["sdp"] as? String else { continue }
                                let i = index.with { v -> Int in v += 1; return v }
                                do {
                                    let (setup, answer) = try CallSetup.answering(index: i, bind: bind, identity: identity, offer: sdp)
                                    _ = loop.execute { driver.value.add(setup, tag: session.extensionNumber + "/" + call) }
                                    let reply = try JSONSerialization.data(withJSONObject: ["type": "answer", "call": call, "sdp": answer])
                                    try await outbound.write(.text(String(decoding: reply, as: UTF8.self)))
                                    tally.add("answered")
                                } catch {
                                    tally.add("answer_failed")
                                    try await outbound.write(.text(#"{"type":"hangup","call":"\#(call)","code":500}"#))
                                }
                            case "ended":
                                guard let call = frame["call"] as? String else { continue }
                                _ = loop.execute { driver.value.end(tag: session.extensionNumber + "/" + call) }
                                tally.add(frame["code"] is NSNull || frame["code"] == nil ? "ended" : "ended_with_code")
                            case "error":
                                tally.add("errors")
                            default:
                                break
                            }
                            if stop.with({ $0 }) { break }
                        }
                    }
                } catch {
                    tally.add("socket_failures")
                    FileHandle.standardError.write(Data("signalling socket of \(session.extensionNumber): \(error)\n".utf8))
                }
                tally.add("sockets_closed")
            }
        }
        // All registered?
        let deadline = Date().addingTimeInterval(60)
        while tally.get("registered") < sessions.count, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        var ready: [String: Int] = tally.all
        ready["registered"] = tally.get("registered")
        ready["sessions"] = sessions.count
        say(String(decoding: try JSONSerialization.data(withJSONObject: ready, options: [.sortedKeys]), as: UTF8.self))
        while let line = readLine() {
            switch line.trimmingCharacters(in: .whitespaces) {
            case "mark":
                try syncOnLoop(loop) { driver.value.startMeasuring() }
                say(#"{"marked":true}"#)
            case "report":
                var report = try syncOnLoop(loop) { driver.value.gatewayReport() }
                for (k, v) in tally.all { report["signalling_" + k] = v }
                say(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
            case "quit":
                stop.with { $0 = true }
                try syncOnLoop(loop) { driver.value.closeAll() }
                return
            default:
                say(#"{"error":"unknown command"}"#)
            }
        }
        try syncOnLoop(loop) { driver.value.closeAll() }
    }
}
