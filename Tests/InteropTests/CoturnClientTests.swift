import Foundation
import XCTest

/// Tandem's TURN server against coturn's own clients (Debian's `coturn` package):
/// `turnutils_stunclient` and `turnutils_uclient` with REST-API auth (`-W <secret>`) over
/// UDP, TCP and TLS, relaying to `turnutils_peer` on loopback.
final class CoturnClientTests: XCTestCase {
    func testStunClientBinding() throws {
        let stunclient = try Interop.tool("turnutils_stunclient")
        let tandem = try TandemProcess()
        defer { tandem.stop() }
        let out = try Interop.run(stunclient, ["-p", "\(tandem.turnPort)", "127.0.0.1"], timeout: 20)
        XCTAssertFalse(out.timedOut, out.text)
        XCTAssertEqual(out.status, 0, out.text)
        XCTAssertTrue(out.text.contains("UDP reflexive addr: 127.0.0.1:"), out.text)
        XCTAssertEqual(tandem.stop(), 0, "graceful shutdown exits 0\n\(tandem.log)")
    }

    func relay(transport flags: [String], port: (TandemProcess) -> Int, clients: Int = 4, messages: Int = 40, environment: [String: String] = [:]) throws {
        let uclient = try Interop.tool("turnutils_uclient")
        let peer = try EchoPeer()
        defer { peer.stop() }
        let tandem = try TandemProcess(extraEnvironment: environment)
        defer { tandem.stop() }
        let args = flags + ["-W", tandem.secret, "-u", "interop", "-e", "127.0.0.1", "-r", "\(peer.port)",
                            "-p", "\(port(tandem))", "-n", "\(messages)", "-l", "172", "-m", "\(clients)", "-z", "5", "127.0.0.1"]
        let out = try Interop.run(uclient, args, timeout: 90)
        XCTAssertFalse(out.timedOut, out.text)
        let report = UClientReport(out.text)
        XCTAssertGreaterThanOrEqual(report.sent, clients * messages, out.text)
        XCTAssertEqual(report.received, report.sent, "every relayed packet came back\n\(out.text.suffix(2000))")
        XCTAssertEqual(report.lost, 0, out.text)
        XCTAssertEqual(tandem.stop(), 0, tandem.log)
    }

    func testUClientOverUDP() throws { try relay(transport: [], port: { $0.turnPort }) }
    func testUClientOverUDPWithoutChannels() throws { try relay(transport: ["-s"], port: { $0.turnPort }) }
    func testUClientOverTCP() throws { try relay(transport: ["-t"], port: { $0.turnPort }) }
    /// turnutils_uclient draws each TLS connection's protocol at random from SSLv23, TLSv1,
    /// TLSv1.1 and TLSv1.2 client methods, so this run lowers `turn.tls-min-version` to 1.0;
    /// ``testTLSBelow12IsRefusedByDefault`` shows the default refuses those versions.
    func testUClientOverTLS() throws {
        try relay(transport: ["-t", "-S"], port: { $0.turnPort + 1 }, environment: ["TANDEM_TURN_TLS_MIN_VERSION": "1.0"])
    }

    func testTLSBelow12IsRefusedByDefault() throws {
        let openssl = try Interop.tool("openssl")
        let tandem = try TandemProcess()
        defer { tandem.stop() }
        let target = "127.0.0.1:\(tandem.turnPort + 1)"
        let modern = try Interop.run(openssl, ["s_client", "-connect", target, "-tls1_2", "-brief"], environment: [:], timeout: 15, input: "")
        XCTAssertTrue(modern.text.contains("Protocol version: TLSv1.2"), modern.text)
        let old = try Interop.run(openssl, ["s_client", "-connect", target, "-tls1", "-cipher", "DEFAULT@SECLEVEL=0", "-brief"], environment: [:], timeout: 15, input: "")
        XCTAssertFalse(old.text.contains("Protocol version: TLSv1\n"), old.text)
        XCTAssertNotEqual(old.status, 0, old.text)
    }
    func testUClientIPv6Relay() throws { try relay(transport: ["-x", "-c"], port: { $0.turnPort }, clients: 2) }

    func testWrongSecretIsRefused() throws {
        let uclient = try Interop.tool("turnutils_uclient")
        let peer = try EchoPeer()
        defer { peer.stop() }
        let tandem = try TandemProcess()
        defer { tandem.stop() }
        let out = try Interop.run(uclient, ["-W", "wrong-secret", "-u", "mallory", "-e", "127.0.0.1", "-r", "\(peer.port)", "-p", "\(tandem.turnPort)", "-n", "5", "-m", "1", "-c", "127.0.0.1"], timeout: 30)
        XCTAssertEqual(UClientReport(out.text).received, 0, out.text)
        XCTAssertTrue(out.text.contains("401") || out.text.lowercased().contains("unauthorized") || out.text.contains("Cannot complete Allocation"), out.text)
    }

    func testExpiredCredentialIsRefused() throws {
        let uclient = try Interop.tool("turnutils_uclient")
        let peer = try EchoPeer()
        defer { peer.stop() }
        let tandem = try TandemProcess()
        defer { tandem.stop() }
        // A credential that expired a minute ago, signed with the right secret.
        let credentials = try Interop.run(try Interop.tandemBinary(), ["turn", "credentials", "--user", "late", "--ttl=-60"], environment: ["TANDEM_STORAGE_DATA_DIRECTORY": tandem.directory.appendingPathComponent("data").path], timeout: 30)
        let lines = credentials.text.split(separator: "\n")
        let username = lines.first { $0.hasPrefix("username") }.map { String($0.split(separator: " ", omittingEmptySubsequences: true).last!) } ?? ""
        let password = lines.first { $0.hasPrefix("password") }.map { String($0.split(separator: " ", omittingEmptySubsequences: true).last!) } ?? ""
        XCTAssertFalse(username.isEmpty, credentials.text)
        let out = try Interop.run(uclient, ["-u", username, "-w", password, "-e", "127.0.0.1", "-r", "\(peer.port)", "-p", "\(tandem.turnPort)", "-n", "5", "-m", "1", "-c", "127.0.0.1"], timeout: 30)
        XCTAssertEqual(UClientReport(out.text).received, 0, out.text)
    }

    func testLoopbackPeerRefusedWithoutAllowList() throws {
        let uclient = try Interop.tool("turnutils_uclient")
        let peer = try EchoPeer()
        defer { peer.stop() }
        let tandem = try TandemProcess(allowLoopbackPeers: false)
        defer { tandem.stop() }
        let out = try Interop.run(uclient, ["-W", tandem.secret, "-u", "interop", "-e", "127.0.0.1", "-r", "\(peer.port)", "-p", "\(tandem.turnPort)", "-n", "5", "-m", "1", "-c", "127.0.0.1"], timeout: 30)
        XCTAssertEqual(UClientReport(out.text).received, 0, out.text)
        XCTAssertTrue(out.text.contains("403"), out.text)
    }
}
