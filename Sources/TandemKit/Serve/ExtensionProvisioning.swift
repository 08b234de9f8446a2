import Store

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
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            if bounds.count == 2, let low = Int(bounds[0]), let high = Int(bounds[1]), bounds[0].allSatisfy(\.isNumber), bounds[1].allSatisfy(\.isNumber) {
                guard low <= high else { throw Error(description: "range \(item) runs backwards") }
                guard high - low < maximumCount - out.count else { throw Error(description: "more than \(maximumCount) extensions") }
                let width = bounds[0].count
                for n in low...high {
                    let number = String(n)
                    let padded = String(repeating: "0", count: max(0, width - number.count)) + number
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
        guard digest else { return numbers.map { ExtensionRecord(number: $0, authentication: .none, realm: realm) } }
        guard let password, !password.isEmpty else { throw Error(description: "--digest needs --password") }
        var out: [ExtensionRecord] = []
        for (offset, number) in numbers.enumerated() {
            let user = username ?? number
            let (u, p) = increment ? (try counted(user, by: offset, field: "username"), try counted(password, by: offset, field: "password")) : (user, password)
            out.append(ExtensionRecord(number: number, authentication: .digest, digestUsername: username == nil ? number : u, digestPassword: p, realm: realm))
        }
        return out
    }

    /// `value` with its trailing decimal number raised by `offset`, keeping its width.
    static func counted(_ value: String, by offset: Int, field: String) throws(Error) -> String {
        let digits = value.reversed().prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, let n = Int(String(digits.reversed())) else {
            throw Error(description: "--increment needs the \(field) to end in a number")
        }
        let prefix = value.dropLast(digits.count)
        let raised = String(n + offset)
        return prefix + String(repeating: "0", count: max(0, digits.count - raised.count)) + raised
    }
}
