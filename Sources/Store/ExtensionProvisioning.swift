/// Expands what an administrator types into extension records: a list of numbers and
/// ranges (`3000-3099,3200`), digest credentials shared by all or, with `increment`,
/// counted up along the range (username `3000` and password `pw1000` give `3001`/`pw1001`
/// to the second extension), as the reference product's range provisioning does.
public enum ExtensionProvisioning {
    /// The most extensions one command may name.
    public static let maximumCount = 100_000

    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// The numbers of `text`: comma-separated numbers and `first-last` ranges, in order,
    /// without duplicates. A range keeps the width of its first number (`0100-0102`).
    public static func numbers(_ text: String) throws(Error) -> [String] {
        var out: [String] = []
        var seen = Set<String>()
        for item in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            // E.164 numbers keep their "+": +4930100-+4930199 (or +4930100-4930199).
            let plus = item.hasPrefix("+") ? "+" : ""
            let bounds = item.dropFirst(plus.count).split(separator: "-", omittingEmptySubsequences: false).map { $0.hasPrefix("+") && !plus.isEmpty ? $0.dropFirst() : $0 }
            if bounds.count == 2, let low = Int(bounds[0]), let high = Int(bounds[1]), !bounds[0].isEmpty, !bounds[1].isEmpty,
               bounds[0].allSatisfy({ $0.isASCII && $0.isNumber }), bounds[1].allSatisfy({ $0.isASCII && $0.isNumber }) {
                guard low <= high else { throw Error(description: "range \(item) runs backwards") }
                guard high - low < maximumCount - out.count else { throw Error(description: "more than \(maximumCount) extensions") }
                let width = bounds[0].count
                for n in low...high {
                    let number = String(n)
                    let padded = plus + String(repeating: "0", count: max(0, width - number.count)) + number
                    if seen.insert(padded).inserted { out.append(padded) }
                }
            } else {
                guard bounds.count == 1 else { throw Error(description: "\"\(item)\" is neither a number nor a range first-last") }
                if seen.insert(item).inserted { out.append(item) }
            }
            guard out.count <= maximumCount else { throw Error(description: "more than \(maximumCount) extensions") }
        }
        guard !out.isEmpty else { throw Error(description: "no extensions named") }
        return out
    }

    /// Records for `numbers`. Without digest, each registers without credentials. With
    /// `increment`, the trailing number of the username and of the password grows by the
    /// extension's position.
    public static func records(numbers: [String], digest: Bool, username: String?, password: String?, realm: String, increment: Bool) throws(Error) -> [ExtensionRecord] {
        try records(numbers: numbers, digest: digest, username: username, password: password, realm: realm,
                    increment: increment ? [.username, .password] : [])
    }

    /// The fields that may count up along a range.
    public enum CountedField: String, Sendable, Hashable, CaseIterable {
        case username, password, realm
    }

    /// Records for `numbers`, each field in `increment` counted up by the extension's position
    /// (a realm such as `pbx1.example.com` counts its trailing number only if it ends in one).
    public static func records(numbers: [String], digest: Bool, username: String?, password: String?, realm: String, increment: Set<CountedField>) throws(Error) -> [ExtensionRecord] {
        var out: [ExtensionRecord] = []
        out.reserveCapacity(numbers.count)
        if digest, password?.isEmpty ?? true { throw Error(description: "digest authentication needs a password") }
        for (offset, number) in numbers.enumerated() {
            let r = increment.contains(.realm) ? try counted(realm, by: offset, field: "realm") : realm
            guard digest, let password else {
                out.append(ExtensionRecord(number: number, authentication: .none, realm: r))
                continue
            }
            var u = number
            if let username { u = increment.contains(.username) ? try counted(username, by: offset, field: "username") : username }
            let p = increment.contains(.password) ? try counted(password, by: offset, field: "password") : password
            out.append(ExtensionRecord(number: number, authentication: .digest, digestUsername: u, digestPassword: p, realm: r))
        }
        return out
    }

    /// `value` with its trailing decimal number raised by `offset`, keeping its width.
    static func counted(_ value: String, by offset: Int, field: String) throws(Error) -> String {
        let digits = value.reversed().prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let n = Int(String(digits.reversed())) else {
            throw Error(description: "counting up needs the \(field) to end in a number")
        }
        let prefix = value.dropLast(digits.count)
        let raised = String(n + offset)
        return prefix + String(repeating: "0", count: max(0, digits.count - raised.count)) + raised
    }
}
