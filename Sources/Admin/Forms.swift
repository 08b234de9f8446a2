import Foundation

/// An HTML form's submission, `application/x-www-form-urlencoded` (the URL Standard's
/// "application/x-www-form-urlencoded parsing"): `+` is a space, `%XX` a byte.
public struct FormBody: Sendable, Equatable {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case tooLarge(limit: Int)
        case tooManyFields(limit: Int)
        case invalidEncoding

        public var description: String {
            switch self {
            case .tooLarge(let limit): "the form is larger than \(limit) bytes"
            case .tooManyFields(let limit): "the form has more than \(limit) fields"
            case .invalidEncoding: "the form is not valid UTF-8 percent-encoding"
            }
        }
    }

    /// Fields in order; a name may repeat.
    public var fields: [(name: String, value: String)]

    public static func == (a: FormBody, b: FormBody) -> Bool {
        a.fields.map(\.name) == b.fields.map(\.name) && a.fields.map(\.value) == b.fields.map(\.value)
    }

    public static let maximumSize = 1 << 20
    public static let maximumFields = 512

    public init(fields: [(name: String, value: String)]) { self.fields = fields }

    public init(parsing bytes: some Collection<UInt8>, maximumSize: Int = FormBody.maximumSize) throws(ParseError) {
        guard bytes.count <= maximumSize else { throw .tooLarge(limit: maximumSize) }
        var fields: [(name: String, value: String)] = []
        for part in bytes.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            guard fields.count < Self.maximumFields else { throw .tooManyFields(limit: Self.maximumFields) }
            let eq = part.firstIndex(of: UInt8(ascii: "="))
            let name = try Self.decode(eq.map { part[part.startIndex..<$0] } ?? part[...])
            var value = ""
            if let eq { value = try Self.decode(part[part.index(after: eq)...]) }
            fields.append((name, value))
        }
        self.fields = fields
    }

    /// The first value of `name`.
    public subscript(_ name: String) -> String? { fields.first { $0.name == name }?.value }

    /// Every value of `name`, in order.
    public func values(_ name: String) -> [String] { fields.filter { $0.name == name }.map(\.value) }

    static func decode(_ bytes: some Collection<UInt8>) throws(ParseError) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i != bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "+") {
                out.append(0x20)
            } else if b == UInt8(ascii: "%") {
                let h = bytes.index(after: i)
                guard h != bytes.endIndex, bytes.index(after: h) != bytes.endIndex,
                      let hi = hexValue(bytes[h]), let lo = hexValue(bytes[bytes.index(after: h)])
                else { throw .invalidEncoding }
                out.append(hi << 4 | lo)
                i = bytes.index(after: h)
            } else {
                out.append(b)
            }
            i = bytes.index(after: i)
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw .invalidEncoding }
        return s
    }

    static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Percent-encodes for a query string or form value.
    public static func encode(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }
}

/// Cookies of a request (RFC 6265 §5.4 `Cookie` header: `name=value; name2=value2`).
public enum Cookies {
    /// The value of cookie `name` in a `Cookie` header, if present (headers over 8 KiB are ignored).
    public static func value(_ name: String, in header: String?) -> String? {
        guard let header, header.utf8.count <= 8192 else { return nil }
        for pair in header.split(separator: ";") {
            let kv = pair.split(separator: "=", maxSplits: 1)
            if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == name {
                return kv[1].trimmingCharacters(in: .whitespaces)
            }
        }
        return nil
    }

    /// A `Set-Cookie` value (RFC 6265 §4.1) scoped to `/cms`: never readable by script, sent only
    /// over HTTPS and only on requests from Tandem's own pages. nil `maxAge` is a session cookie;
    /// 0 deletes it.
    public static func setCookie(_ name: String, _ value: String, maxAge: Int?, secure: Bool) -> String {
        var parts = ["\(name)=\(value)", "Path=/cms", "HttpOnly", "SameSite=Strict"]
        if secure { parts.append("Secure") }
        if let maxAge { parts.append("Max-Age=\(maxAge)") }
        return parts.joined(separator: "; ")
    }
}

/// A `multipart/form-data` submission (RFC 7578), as a form with a file input sends it:
/// parts with a name, an optional file name, and their bytes.
public struct MultipartBody: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        public var name: String
        public var filename: String?
        public var body: [UInt8]
    }

    public var parts: [Part]
    public static let maximumParts = 16

    /// The boundary of a `Content-Type: multipart/form-data; boundary=…` (RFC 2046 §5.1.1: 1–70 characters).
    public static func boundary(contentType: String?) -> String? {
        guard let contentType, contentType.lowercased().hasPrefix("multipart/form-data") else { return nil }
        for parameter in contentType.split(separator: ";").dropFirst() {
            let kv = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == "boundary" {
                let b = kv[1].hasPrefix("\"") && kv[1].hasSuffix("\"") && kv[1].count >= 2 ? String(kv[1].dropFirst().dropLast()) : kv[1]
                return (1...70).contains(b.utf8.count) ? b : nil
            }
        }
        return nil
    }

    public init(parsing bytes: [UInt8], boundary: String) throws(FormBody.ParseError) {
        let delimiter = Array("--\(boundary)".utf8)
        var parts: [Part] = []
        var cursor = 0
        guard let first = Self.find(delimiter, in: bytes, from: 0) else { throw .invalidEncoding }
        cursor = first + delimiter.count
        while true {
            // After a delimiter: "--" ends the body, CRLF starts a part.
            if bytes.count >= cursor + 2, bytes[cursor] == UInt8(ascii: "-"), bytes[cursor + 1] == UInt8(ascii: "-") { break }
            guard bytes.count >= cursor + 2, bytes[cursor] == 13, bytes[cursor + 1] == 10 else { throw .invalidEncoding }
            cursor += 2
            guard let headerEnd = Self.find(Array("\r\n\r\n".utf8), in: bytes, from: cursor), headerEnd - cursor <= 8192 else { throw .invalidEncoding }
            guard let headers = String(validating: bytes[cursor..<headerEnd], as: UTF8.self) else { throw .invalidEncoding }
            guard let next = Self.find(Array("\r\n".utf8) + delimiter, in: bytes, from: headerEnd + 4) else { throw .invalidEncoding }
            guard parts.count < Self.maximumParts else { throw .tooManyFields(limit: Self.maximumParts) }
            var name: String?
            var filename: String?
            for line in headers.split(separator: "\r\n") where line.lowercased().hasPrefix("content-disposition:") {
                name = Self.parameter("name", in: line)
                filename = Self.parameter("filename", in: line)
            }
            guard let name else { throw .invalidEncoding }
            parts.append(Part(name: name, filename: filename, body: Array(bytes[(headerEnd + 4)..<next])))
            cursor = next + 2 + delimiter.count
        }
        self.parts = parts
    }

    public subscript(_ name: String) -> Part? { parts.first { $0.name == name } }

    static func parameter(_ name: String, in line: Substring) -> String? {
        for item in line.split(separator: ";").dropFirst() {
            let kv = item.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == name {
                return kv[1].hasPrefix("\"") && kv[1].hasSuffix("\"") && kv[1].count >= 2 ? String(kv[1].dropFirst().dropLast()) : kv[1]
            }
        }
        return nil
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count, start <= haystack.count - needle.count else { return nil }
        var i = start
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == needle[0] {
                var j = 1
                while j < needle.count && haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }
}
