import Testing

@testable import Store
@testable import TandemKit

@Suite("Extension ranges and host:port")
struct ExtensionProvisioningTests {
    @Test func numbersAndRanges() throws {
        #expect(try ExtensionProvisioning.numbers("3000-3002") == ["3000", "3001", "3002"])
        #expect(try ExtensionProvisioning.numbers("3001, 3000-3001,alice") == ["3001", "3000", "alice"])
        #expect(try ExtensionProvisioning.numbers("0098-0101") == ["0098", "0099", "0100", "0101"])
        #expect(try ExtensionProvisioning.numbers("3000-3099").count == 100)
        #expect(throws: ExtensionProvisioning.Error.self) { try ExtensionProvisioning.numbers("3010-3000") }
        #expect(throws: ExtensionProvisioning.Error.self) { try ExtensionProvisioning.numbers("1-2-3") }
        #expect(throws: ExtensionProvisioning.Error.self) { try ExtensionProvisioning.numbers(" , ") }
        #expect(throws: ExtensionProvisioning.Error.self) { try ExtensionProvisioning.numbers("0-1000000") }
    }

    @Test func incrementCountsUpUsernameAndPassword() throws {
        let numbers = try ExtensionProvisioning.numbers("3000-3099")
        let records = try ExtensionProvisioning.records(numbers: numbers, digest: true, username: "3000", password: "pw1000", realm: "pbx", increment: true)
        #expect(records[42].number == "3042" && records[42].digestUsername == "3042" && records[42].digestPassword == "pw1042" && records[42].realm == "pbx")
        let padded = try ExtensionProvisioning.records(numbers: ["1", "2"], digest: true, username: "user-009", password: "s", realm: "", increment: false)
        #expect(padded.map(\.digestUsername) == ["user-009", "user-009"] && padded.map(\.digestPassword) == ["s", "s"])
        let widths = try ExtensionProvisioning.records(numbers: ["1", "2"], digest: true, username: "user-009", password: "x99", realm: "", increment: true)
        #expect(widths.map(\.digestUsername) == ["user-009", "user-010"] && widths.map(\.digestPassword) == ["x99", "x100"])
        // Without --username each extension is its own username.
        let own = try ExtensionProvisioning.records(numbers: ["7", "8"], digest: true, username: nil, password: "pw", realm: "", increment: false)
        #expect(own.map(\.digestUsername) == ["7", "8"])
        #expect(throws: ExtensionProvisioning.Error.self) {
            try ExtensionProvisioning.records(numbers: ["1"], digest: true, username: "alice", password: "p1", realm: "", increment: true)
        }
        #expect(try ExtensionProvisioning.records(numbers: ["1"], digest: false, username: nil, password: nil, realm: "", increment: false)[0].authentication == .none)
    }

    @Test func hostAndPort() throws {
        #expect(HostAndPort("pbx.example.com") == HostAndPort(host: "pbx.example.com", port: nil))
        let v4 = try #require(HostAndPort("10.0.0.5:5080"))
        #expect(v4.host == "10.0.0.5" && v4.port == 5080 && v4.isAddress)
        let v6 = try #require(HostAndPort("[2001:db8::1]:5061"))
        #expect(v6.host == "2001:db8::1" && v6.port == 5061 && v6.description == "[2001:db8::1]:5061")
        #expect(HostAndPort("2001:db8::1")?.port == nil)
        for bad in ["", "host:0", "host:70000", "a b", "[::1", "[nothost]:5060", "x:1:2"] { #expect(HostAndPort(bad) == nil, "\(bad)") }
    }
}

extension HostAndPort {
    init(host: String, port: Int?) {
        self = HostAndPort(port.map { "\(host):\($0)" } ?? host)!
    }
}
