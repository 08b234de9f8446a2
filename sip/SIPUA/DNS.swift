#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// The DNS a SIP UA needs to find its platform (RFC 3263 §4.1–§4.2): SRV (RFC 2782), A and
/// AAAA queries over UDP (RFC 1035 §4), and a bounded parser of the answers. Hand-written
/// because SwiftNIO resolves only A/AAAA (through getaddrinfo) and none of the packages on
/// this machine's mirror speaks SRV.
public enum DNS {
    public enum RecordType: UInt16, Sendable {
        case a = 1, aaaa = 28, srv = 33, cname = 5
    }

    /// An SRV record (RFC 2782).
    public struct Service: Hashable, Sendable {
        public var priority: UInt16
        public var weight: UInt16
        public var port: UInt16
        public var target: String
    }

    /// What an answer held: SRV records, and addresses (A and AAAA, as text) by owner name.
    public struct Answer: Hashable, Sendable {
        public var services: [Service] = []
        public var addresses: [String: [String]] = [:]
        public var responseCode: UInt8 = 0
        public var truncated = false
    }

    public enum Error: Swift.Error, Equatable, Sendable {
        case nameTooLong
        case malformed(String)
        case wrongID
        case noServer
        case timeout
    }

    /// A query for `name` and `type` with `id` and recursion desired (RFC 1035 §4.1).
    public static func query(id: UInt16, name: String, type: RecordType) throws(Error) -> [UInt8] {
        var out: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]
        let labels = name.split(separator: ".", omittingEmptySubsequences: true)
        guard name.utf8.count <= 253, !labels.isEmpty else { throw .nameTooLong }
        for label in labels {
            let bytes = Array(label.utf8)
            guard (1...63).contains(bytes.count) else { throw .nameTooLong }
            out.append(UInt8(bytes.count))
            out += bytes
        }
        out += [0, UInt8(type.rawValue >> 8), UInt8(type.rawValue & 0xFF), 0, 1]
        return out
    }

    /// Parses a response to the query with `id` (at most 64 KiB, at most 256 records; every
    /// name bounded and its compression pointers followed at most 32 times).
    public static func parse(_ bytes: [UInt8], id: UInt16) throws(Error) -> Answer {
        guard bytes.count >= 12, bytes.count <= 65_535 else { throw .malformed("short header") }
        guard UInt16(bytes[0]) << 8 | UInt16(bytes[1]) == id else { throw .wrongID }
        guard bytes[2] & 0x80 != 0 else { throw .malformed("not a response") }
        var answer = Answer()
        answer.truncated = bytes[2] & 0x02 != 0
        answer.responseCode = bytes[3] & 0x0F
        let questions = Int(bytes[4]) << 8 | Int(bytes[5])
        let records = (Int(bytes[6]) << 8 | Int(bytes[7])) + (Int(bytes[8]) << 8 | Int(bytes[9])) + (Int(bytes[10]) << 8 | Int(bytes[11]))
        guard questions <= 4, records <= 256 else { throw .malformed("too many records") }
        var offset = 12
        for _ in 0..<questions {
            _ = try name(bytes, &offset)
            offset += 4
            guard offset <= bytes.count else { throw .malformed("question runs past the end") }
        }
        for _ in 0..<records {
            let owner = try name(bytes, &offset).lowercased()
            guard offset + 10 <= bytes.count else { throw .malformed("record header runs past the end") }
            let type = UInt16(bytes[offset]) << 8 | UInt16(bytes[offset + 1])
            let length = Int(bytes[offset + 8]) << 8 | Int(bytes[offset + 9])
            offset += 10
            guard offset + length <= bytes.count else { throw .malformed("record data runs past the end") }
            let data = offset..<(offset + length)
            switch RecordType(rawValue: type) {
            case .a where length == 4:
                answer.addresses[owner, default: []].append(bytes[data].map(String.init).joined(separator: "."))
            case .aaaa where length == 16:
                let groups = stride(from: data.lowerBound, to: data.upperBound, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
                answer.addresses[owner, default: []].append(groups.joined(separator: ":"))
            case .srv where length >= 7:
                var at = data.lowerBound + 6
                let target = try name(bytes, &at)
                let field = { (i: Int) in UInt16(bytes[data.lowerBound + i]) << 8 | UInt16(bytes[data.lowerBound + i + 1]) }
                answer.services.append(Service(priority: field(0), weight: field(2), port: field(4), target: target.lowercased()))
            default:
                break
            }
            offset = data.upperBound
        }
        return answer
    }

    /// A possibly compressed domain name at `offset` (RFC 1035 §4.1.4); `offset` moves past it.
    static func name(_ bytes: [UInt8], _ offset: inout Int) throws(Error) -> String {
        var labels: [String] = []
        var at = offset
        var jumped = false
        var jumps = 0
        var length = 0
        while true {
            guard at < bytes.count else { throw .malformed("name runs past the end") }
            let count = Int(bytes[at])
            if count & 0xC0 == 0xC0 {
                guard at + 1 < bytes.count else { throw .malformed("pointer runs past the end") }
                jumps += 1
                guard jumps <= 32 else { throw .malformed("compression loop") }
                let target = (count & 0x3F) << 8 | Int(bytes[at + 1])
                if !jumped { offset = at + 2 }
                jumped = true
                at = target
                continue
            }
            guard count & 0xC0 == 0 else { throw .malformed("label type") }
            if count == 0 {
                if !jumped { offset = at + 1 }
                return labels.joined(separator: ".")
            }
            guard at + 1 + count <= bytes.count else { throw .malformed("label runs past the end") }
            length += count + 1
            guard length <= 255 else { throw .nameTooLong }
            labels.append(String(decoding: bytes[(at + 1)...(at + count)], as: UTF8.self))
            at += 1 + count
        }
    }

    /// SRV records in the order to try them (RFC 2782): by priority, and within a priority by
    /// weighted random choice, weight 0 last.
    public static func ordered(_ services: [Service], using generator: inout some RandomNumberGenerator) -> [Service] {
        var out: [Service] = []
        for priority in Set(services.map(\.priority)).sorted() {
            var group = services.filter { $0.priority == priority }
            while !group.isEmpty {
                let total = group.reduce(0) { $0 + Int($1.weight) }
                var pick = total > 0 ? Int.random(in: 1...total, using: &generator) : 0
                var index = group.count - 1
                if total > 0 {
                    for (i, s) in group.enumerated() {
                        pick -= Int(s.weight)
                        if pick <= 0 { index = i; break }
                    }
                } else {
                    index = 0
                }
                out.append(group.remove(at: index))
            }
        }
        return out
    }

    /// The name servers of /etc/resolv.conf (IPv4 and IPv6 literals), at most three.
    public static func nameservers(resolvConf: String = "/etc/resolv.conf") -> [String] {
        guard let file = fopen(resolvConf, "r") else { return [] }
        defer { fclose(file) }
        var servers: [String] = []
        var line = [CChar](repeating: 0, count: 1024)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0.isNewline })
            if words.count >= 2, words[0] == "nameserver" { servers.append(String(words[1])) }
        }
        return Array(servers.prefix(3))
    }

    /// Asks `server` (an IP literal, port 53 unless given) and waits at most `timeoutMilliseconds`.
    public static func ask(_ name: String, _ type: RecordType, server: String, port: UInt16 = 53, timeoutMilliseconds: Int = 2000) throws(Error) -> Answer {
        let id = UInt16.random(in: 0...UInt16.max)
        let request = try query(id: id, name: name, type: type)
        guard let address = try? SocketAddress(ipAddress: server, port: Int(port)) else { throw .noServer }
        let fd = socket(address.protocol.rawValue, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw .noServer }
        defer { close(fd) }
        let sent = address.withSockAddr { sendto(fd, request, request.count, 0, $0, socklen_t($1)) }
        guard sent == request.count else { throw .noServer }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var remaining = timeoutMilliseconds
        while remaining > 0 {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let started = monotonicMilliseconds()
            guard poll(&poller, 1, Int32(remaining)) > 0 else { throw .timeout }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n > 0, let answer = try? parse(Array(buffer[0..<n]), id: id) { return answer }  // another id: keep waiting
            remaining -= max(1, monotonicMilliseconds() - started)
        }
        throw .timeout
    }

    private static func monotonicMilliseconds() -> Int {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return t.tv_sec * 1000 + t.tv_nsec / 1_000_000
    }
}

/// Finds the platform's address as RFC 3263 says: an IP literal as it is; a name with a port
/// by A/AAAA; a name without one by SRV (`_sip._udp`, `_sip._tcp`, `_sips._tcp`) and the
/// targets' A/AAAA (from the answer's additional records or asked next), else A/AAAA of the
/// name with the transport's default port. Returns every address in the order to try.
public struct SIPResolver: Sendable {
    public var nameservers: [(host: String, port: UInt16)]
    public var timeoutMilliseconds: Int

    public init(nameservers: [(host: String, port: UInt16)] = DNS.nameservers().map { ($0, 53) }, timeoutMilliseconds: Int = 2000) {
        self.nameservers = nameservers
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    public func resolve(host: String, port: Int?, transport: SIPTransport) throws -> [SIPDestination] {
        if let literal = try? SIPDestination(transport: transport, ipAddress: host, port: port ?? transport.defaultPort) { return [literal] }
        var generator = SystemRandomNumberGenerator()
        if port == nil {
            let service = (transport == .tls ? "_sips._tcp." : transport == .tcp ? "_sip._tcp." : "_sip._udp.") + host
            if let answer = try? ask(service, .srv), !answer.services.isEmpty {
                var out: [SIPDestination] = []
                for record in DNS.ordered(answer.services, using: &generator) where record.target != "." && !record.target.isEmpty {
                    let addresses = answer.addresses[record.target] ?? addresses(of: record.target)
                    out += addresses.compactMap { try? SIPDestination(transport: transport, ipAddress: $0, port: Int(record.port), serverName: host) }
                }
                if !out.isEmpty { return out }
            }
        }
        let out = addresses(of: host).compactMap { try? SIPDestination(transport: transport, ipAddress: $0, port: port ?? transport.defaultPort, serverName: host) }
        if !out.isEmpty { return out }
        // Not in the DNS (or no server answers): the system's resolver, which reads /etc/hosts.
        guard let address = try? SocketAddress.makeAddressResolvingHost(host, port: port ?? transport.defaultPort) else {
            throw SIPTransportError(description: "cannot resolve \(host)")
        }
        return [SIPDestination(transport: transport, address: address, serverName: host)]
    }

    /// A then AAAA records of `name` (through any CNAME the server followed).
    func addresses(of name: String) -> [String] {
        [DNS.RecordType.a, .aaaa].flatMap { type -> [String] in
            guard let answer = try? ask(name, type) else { return [] }
            return answer.addresses[name.lowercased()] ?? answer.addresses.values.flatMap { $0 }
        }
    }

    func ask(_ name: String, _ type: DNS.RecordType) throws -> DNS.Answer {
        var last: DNS.Error = .noServer
        for server in nameservers {
            do {
                return try DNS.ask(name, type, server: server.host, port: server.port, timeoutMilliseconds: timeoutMilliseconds)
            } catch {
                last = error
            }
        }
        throw last
    }
}
