extension SessionDescription {
    /// Bounds applied to untrusted input.
    public struct Limits: Sendable {
        public var maximumBytes = 65_536
        public var maximumLines = 4_096
        public var maximumLineLength = 4_096
        public var maximumMediaSections = 64
        public init() {}
    }

    /// Parses a description (RFC 8866 §9 grammar; CRLF or bare LF line ends).
    public init(parsing bytes: some Collection<UInt8>, limits: Limits = Limits()) throws(SDPError) {
        guard bytes.count <= limits.maximumBytes else { throw .tooLarge(limit: limits.maximumBytes) }
        let text = String(decoding: bytes, as: UTF8.self)
        try self.init(parsing: text, limits: limits)
    }

    /// Parses a description from text.
    public init(parsing text: String, limits: Limits = Limits()) throws(SDPError) {
        guard text.utf8.count <= limits.maximumBytes else { throw .tooLarge(limit: limits.maximumBytes) }
        var version: Int?
        var origin: Origin?
        var sessionName: String?
        var timing: Timing?
        var session = SessionDescription(origin: Origin(sessionID: "0", sessionVersion: 0))
        var current: MediaDescription?
        var lineNumber = 0

        // Lines split on LF bytes (a String would see CRLF as one Character), CR dropped.
        for raw in text.utf8.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            guard lineNumber <= limits.maximumLines else { throw .tooManyLines(limit: limits.maximumLines) }
            var utf8 = raw
            if utf8.last == UInt8(ascii: "\r") { utf8 = utf8.dropLast() }
            if utf8.isEmpty { continue }  // a trailing empty line, or blank lines some stacks emit
            guard utf8.count <= limits.maximumLineLength else { throw .lineTooLong(line: lineNumber) }
            guard utf8.count >= 2, utf8[utf8.index(after: utf8.startIndex)] == UInt8(ascii: "="), let typeByte = utf8.first,
                  (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(typeByte)
            else { throw .malformedLine(line: lineNumber, reason: "not <type>=<value>") }
            let type = Character(Unicode.Scalar(typeByte))
            let value = String(decoding: utf8.dropFirst(2), as: UTF8.self)

            if version == nil {
                guard type == "v" else { throw .missingLine(type: "v") }
                guard value == "0" else { throw .malformedLine(line: lineNumber, reason: "unsupported version \(value)") }
                version = 0
                continue
            }
            switch type {
            case "v":
                throw .unexpectedLine(line: lineNumber, type: type)
            case "o":
                guard current == nil, origin == nil else { throw .unexpectedLine(line: lineNumber, type: type) }
                origin = try Self.parseOrigin(value, line: lineNumber)
            case "s":
                guard current == nil, sessionName == nil else { throw .unexpectedLine(line: lineNumber, type: type) }
                sessionName = value
            case "t":
                guard current == nil else { throw .unexpectedLine(line: lineNumber, type: type) }
                let fields = value.split(separator: " ")
                guard fields.count == 2, let start = UInt64(fields[0]), let stop = UInt64(fields[1]) else {
                    throw .malformedLine(line: lineNumber, reason: "t= needs <start> <stop>")
                }
                if timing == nil { timing = Timing(start: start, stop: stop) } else { session.otherLines.append(Line(type: "t", value: value)) }
            case "c":
                let connection = try Self.parseConnection(value, line: lineNumber)
                if current != nil { current!.connection = connection } else { session.connection = connection }
            case "a":
                let attribute = Self.parseAttribute(value)
                guard !attribute.name.isEmpty else { throw .malformedLine(line: lineNumber, reason: "attribute without a name") }
                if current != nil { current!.attributes.append(attribute) } else { session.attributes.append(attribute) }
            case "m":
                guard origin != nil, sessionName != nil, timing != nil else { throw .missingLine(type: origin == nil ? "o" : sessionName == nil ? "s" : "t") }
                if let done = current { session.media.append(done) }
                guard session.media.count < limits.maximumMediaSections else { throw .tooManyMediaSections(limit: limits.maximumMediaSections) }
                current = try Self.parseMedia(value, line: lineNumber)
            case "i", "b", "k":
                if current != nil { current!.otherLines.append(Line(type: type, value: value)) } else { session.otherLines.append(Line(type: type, value: value)) }
            case "u", "e", "p", "r", "z":
                guard current == nil else { throw .unexpectedLine(line: lineNumber, type: type) }
                session.otherLines.append(Line(type: type, value: value))
            default:
                throw .unexpectedLine(line: lineNumber, type: type)
            }
        }
        if let done = current { session.media.append(done) }
        guard version != nil else { throw .missingLine(type: "v") }
        guard let origin else { throw .missingLine(type: "o") }
        guard let sessionName else { throw .missingLine(type: "s") }
        guard let timing else { throw .missingLine(type: "t") }
        session.origin = origin
        session.sessionName = sessionName
        session.timing = timing
        // Lines that came out of the RFC 8866 §5 order are kept in the order `serialized`
        // writes them, so that parsing what it wrote gives this value again.
        session.otherLines = Self.inWrittenOrder(session.otherLines, groups: Self.sessionLineGroups)
        for i in session.media.indices {
            session.media[i].otherLines = Self.inWrittenOrder(session.media[i].otherLines, groups: Self.mediaLineGroups)
        }
        self = session
    }

    /// The session's other lines in the groups `serialized` writes: i, u, e, p before c=,
    /// b after it, then t (repeated), r, z, k after the first t= (RFC 8866 §5).
    static let sessionLineGroups: [Set<Character>] = [["i"], ["u"], ["e"], ["p"], ["b"], ["t", "r", "z", "k"]]
    /// A media section's: i before its c=, b and k after it.
    static let mediaLineGroups: [Set<Character>] = [["i"], ["b", "k"]]

    /// `lines` group by group; lines of one group keep their order.
    static func inWrittenOrder(_ lines: [Line], groups: [Set<Character>]) -> [Line] {
        groups.flatMap { group in lines.filter { group.contains($0.type) } }
    }

    static func parseOrigin(_ value: String, line: Int) throws(SDPError) -> Origin {
        let f = value.split(separator: " ")
        guard f.count == 6, let version = UInt64(f[2]) else { throw .malformedLine(line: line, reason: "o= needs six fields") }
        return Origin(username: String(f[0]), sessionID: String(f[1]), sessionVersion: version, networkType: String(f[3]), addressType: String(f[4]), address: String(f[5]))
    }

    static func parseConnection(_ value: String, line: Int) throws(SDPError) -> Connection {
        let f = value.split(separator: " ")
        guard f.count == 3 else { throw .malformedLine(line: line, reason: "c= needs three fields") }
        return Connection(networkType: String(f[0]), addressType: String(f[1]), address: String(f[2]))
    }

    static func parseAttribute(_ value: String) -> Attribute {
        guard let colon = value.firstIndex(of: ":") else { return Attribute(value) }
        return Attribute(String(value[..<colon]), String(value[value.index(after: colon)...]))
    }

    static func parseMedia(_ value: String, line: Int) throws(SDPError) -> MediaDescription {
        let f = value.split(separator: " ")
        guard f.count >= 3 else { throw .malformedLine(line: line, reason: "m= needs <media> <port> <proto> <fmt>…") }
        var portText = f[1]
        var numberOfPorts: Int?
        if let slash = portText.firstIndex(of: "/") {
            guard let n = Int(portText[portText.index(after: slash)...]), n > 0 else { throw .malformedLine(line: line, reason: "bad number of ports") }
            numberOfPorts = n
            portText = portText[..<slash]
        }
        guard let port = UInt16(portText) else { throw .malformedLine(line: line, reason: "bad port") }
        var media = MediaDescription(media: String(f[0]), port: port, proto: String(f[2]), formats: f.dropFirst(3).map(String.init))
        media.numberOfPorts = numberOfPorts
        return media
    }
}

extension SessionDescription {
    /// The description as text, every line ended by CRLF (RFC 8866 §5).
    public var serialized: String {
        var out = "v=\(version)\r\n"
        out += "o=\(origin.username) \(origin.sessionID) \(origin.sessionVersion) \(origin.networkType) \(origin.addressType) \(origin.address)\r\n"
        out += "s=\(sessionName)\r\n"
        let groups = Self.sessionLineGroups
        func write(_ group: Set<Character>, of lines: [Line]) { for l in lines where group.contains(l.type) { out += "\(l.type)=\(l.value)\r\n" } }
        for group in groups[0..<4] { write(group, of: otherLines) }
        if let c = connection { out += "c=\(c.networkType) \(c.addressType) \(c.address)\r\n" }
        write(groups[4], of: otherLines)
        out += "t=\(timing.start) \(timing.stop)\r\n"
        write(groups[5], of: otherLines)
        for a in attributes { out += a.serialized }
        for m in media {
            let ports = m.numberOfPorts.map { "\(m.port)/\($0)" } ?? "\(m.port)"
            out += "m=\(m.media) \(ports) \(m.proto)\(m.formats.isEmpty ? "" : " " + m.formats.joined(separator: " "))\r\n"
            write(Self.mediaLineGroups[0], of: m.otherLines)
            if let c = m.connection { out += "c=\(c.networkType) \(c.addressType) \(c.address)\r\n" }
            write(Self.mediaLineGroups[1], of: m.otherLines)
            for a in m.attributes { out += a.serialized }
        }
        return out
    }
}

extension Attribute {
    var serialized: String { value.map { "a=\(name):\($0)\r\n" } ?? "a=\(name)\r\n" }
}
