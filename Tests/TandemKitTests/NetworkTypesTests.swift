import NIOCore
import Testing

@testable import TandemKit

@Suite("IPAddress, CIDR, external mappings")
struct NetworkTypesTests {
    @Test(arguments: ["0.0.0.0", "127.0.0.1", "255.255.255.255", "::", "::1", "2001:db8::1", "::ffff:10.1.2.3", "fe80::1"])
    func addressesRoundTrip(_ text: String) throws {
        let address = try #require(IPAddress(text))
        #expect(IPAddress(address.description) == address)
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4x", "::g", "fe80::1%eth0", "localhost", " 1.2.3.4"])
    func invalidAddressesAreRejected(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func addressProperties() throws {
        #expect(IPAddress("127.8.9.10")!.isLoopback)
        #expect(IPAddress("::1")!.isLoopback)
        #expect(IPAddress("::ffff:127.0.0.1")!.isLoopback)
        #expect(!IPAddress("10.0.0.1")!.isLoopback)
        #expect(IPAddress("169.254.1.1")!.isLinkLocal)
        #expect(IPAddress("fe80::abcd")!.isLinkLocal)
        #expect(!IPAddress("fec0::1")!.isLinkLocal)
        #expect(IPAddress("0.0.0.0")!.isUnspecified)
        #expect(IPAddress("::ffff:10.1.2.3")!.unmappedIPv4 == IPAddress("10.1.2.3"))
        #expect(IPAddress("2001:db8::1")!.unmappedIPv4 == nil)
        #expect(IPAddress("2001:0db8:0000::0001")!.description == "2001:db8::1")
        let socket = try SocketAddress(ipAddress: "192.0.2.44", port: 3478)
        #expect(IPAddress(socket) == IPAddress("192.0.2.44"))
        #expect(IPAddress(try SocketAddress(ipAddress: "2001:db8::9", port: 1)) == IPAddress("2001:db8::9"))
        #expect(try IPAddress("::1")!.socketAddress(port: 80).port == 80)
    }

    @Test func cidrParsingAndMatching() throws {
        let ten = try CIDR(parsing: "10.0.0.0/8")
        #expect(ten.contains(IPAddress("10.255.1.2")!))
        #expect(!ten.contains(IPAddress("11.0.0.1")!))
        #expect(ten.contains(IPAddress("::ffff:10.1.2.3")!), "IPv4-mapped addresses match IPv4 prefixes")
        #expect(!ten.contains(IPAddress("2001:db8::1")!))
        #expect(ten.contains(try SocketAddress(ipAddress: "10.1.1.1", port: 9)))

        let normalized = try CIDR(parsing: "192.168.1.77/24")
        #expect(normalized.description == "192.168.1.0/24")
        #expect(try CIDR(parsing: "203.0.113.9").description == "203.0.113.9/32")
        #expect(try CIDR(parsing: "0.0.0.0/0").contains(IPAddress("8.8.8.8")!))

        let v6 = try CIDR(parsing: "2001:db8:abcd::/48")
        #expect(v6.contains(IPAddress("2001:db8:abcd:12::1")!))
        #expect(!v6.contains(IPAddress("2001:db8:abce::1")!))
        #expect(!v6.contains(IPAddress("10.0.0.1")!))
        #expect(try CIDR(parsing: "2001:db8::1/127").contains(IPAddress("2001:db8::")!))
        #expect(try CIDR(parsing: "10.1.2.3/31").network == IPAddress("10.1.2.2"))
        #expect([ten, v6].anyContains(IPAddress("2001:db8:abcd::5")!))
    }

    @Test func invalidCIDRsGiveTypedErrors() {
        #expect(throws: CIDR.ParseError.invalidAddress("10.0.0")) { try CIDR(parsing: "10.0.0/8") }
        #expect(throws: CIDR.ParseError.invalidPrefixLength("33", maximum: 32)) { try CIDR(parsing: "10.0.0.0/33") }
        #expect(throws: CIDR.ParseError.invalidPrefixLength("", maximum: 32)) { try CIDR(parsing: "10.0.0.0/") }
        #expect(throws: CIDR.ParseError.invalidPrefixLength("-1", maximum: 128)) { try CIDR(parsing: "::/-1") }
        #expect(throws: CIDR.ParseError.invalidPrefixLength("129", maximum: 128)) { try CIDR(parsing: "::/129") }
        #expect(CIDR("nonsense") == nil)
    }

    @Test func externalAddressMappings() throws {
        let mapped = try ExternalAddressMapping(parsing: "10.0.0.5=203.0.113.5")
        #expect(mapped.relayAddress == IPAddress("10.0.0.5"))
        #expect(mapped.externalAddress == IPAddress("203.0.113.5"))
        #expect(mapped.description == "10.0.0.5=203.0.113.5")
        let plain = try ExternalAddressMapping(parsing: "198.51.100.1")
        #expect(plain.relayAddress == nil)
        #expect(throws: ExternalAddressMapping.ParseError.familyMismatch("10.0.0.5=2001:db8::1")) {
            try ExternalAddressMapping(parsing: "10.0.0.5=2001:db8::1")
        }
        #expect(throws: ExternalAddressMapping.ParseError.invalidAddress("x")) { try ExternalAddressMapping(parsing: "x=1.2.3.4") }

        let mappings = [mapped, plain]
        #expect(mappings.externalAddress(for: IPAddress("10.0.0.5")!) == IPAddress("203.0.113.5"))
        #expect(mappings.externalAddress(for: IPAddress("10.0.0.6")!) == IPAddress("198.51.100.1"))
        #expect(mappings.externalAddress(for: IPAddress("2001:db8::1")!) == nil)
    }

    @Test func relayCandidatesSkipLoopbackAndLinkLocal() {
        let addresses = ["127.0.0.1", "::1", "fe80::1", "2001:db8::2", "192.0.2.1", "192.0.2.1", "169.254.0.3"].compactMap(IPAddress.init)
        #expect(HostAddresses.relayCandidates(from: addresses) == [IPAddress("192.0.2.1")!, IPAddress("2001:db8::2")!])
        #expect(HostAddresses.relayCandidates(from: [IPAddress.ipv4Loopback]) == [.ipv4Loopback])
        let live = HostAddresses.relayCandidates()
        #expect(!live.isEmpty)
        #expect(live == [.ipv4Loopback] || live.allSatisfy { !$0.isLoopback })
    }
}
