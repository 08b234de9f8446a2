/// Why the configuration could not be loaded. Every case names the key and its
/// environment variable, so the operator knows where to look.
public enum ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `--config` names a file that does not exist.
    case fileNotFound(path: String)
    /// The file exists but cannot be read or is not a YAML mapping.
    case unreadableFile(path: String, reason: String)
    /// A provider failed for this key (for example a YAML list where one value belongs).
    case unreadableValue(key: String, reason: String)
    case invalidPort(key: String, value: String)
    case invalidIPAddress(key: String, value: String)
    case invalidCIDR(key: String, value: String, reason: String)
    case invalidExternalAddress(key: String, value: String, reason: String)
    case invalidInteger(key: String, value: String, expected: String)
    case invalidBoolean(key: String, value: String)
    case invalidChoice(key: String, value: String, allowed: [String])
    case invalidValue(key: String, value: String, reason: String)
    /// `turn.relay-port-min` is above `turn.relay-port-max`.
    case invalidRelayPortRange(min: Int, max: Int)
    /// A certificate without its key, or the reverse, or a CA file without a certificate.
    case incompleteTLSFiles(reason: String)
    /// Two listeners of the same socket type on one port.
    case conflictingPorts(reason: String)

    public var description: String {
        func name(_ key: String) -> String {
            let variable = ConfigurationKey.all.first { $0.name == key }?.environmentVariable
            return variable.map { "\(key) (\($0))" } ?? key
        }
        switch self {
        case .fileNotFound(let path):
            return "configuration file \(path) does not exist"
        case .unreadableFile(let path, let reason):
            return "cannot read configuration file \(path): \(reason)"
        case .unreadableValue(let key, let reason):
            return "\(name(key)): \(reason)"
        case .invalidPort(let key, let value):
            return "\(name(key)): '\(value)' is not a port number (1–65535)"
        case .invalidIPAddress(let key, let value):
            return "\(name(key)): '\(value)' is not an IPv4 or IPv6 address"
        case .invalidCIDR(let key, let value, let reason):
            return "\(name(key)): '\(value)' is not a CIDR prefix: \(reason)"
        case .invalidExternalAddress(let key, let value, let reason):
            return "\(name(key)): '\(value)' is not 'relayIP=externalIP' or an IP: \(reason)"
        case .invalidInteger(let key, let value, let expected):
            return "\(name(key)): '\(value)' is not \(expected)"
        case .invalidBoolean(let key, let value):
            return "\(name(key)): '\(value)' is not true or false"
        case .invalidChoice(let key, let value, let allowed):
            return "\(name(key)): '\(value)' is not one of \(allowed.joined(separator: ", "))"
        case .invalidValue(let key, let value, let reason):
            return "\(name(key)): '\(value)' \(reason)"
        case .invalidRelayPortRange(let min, let max):
            return "turn.relay-port-min (\(min)) is greater than turn.relay-port-max (\(max))"
        case .incompleteTLSFiles(let reason):
            return "TLS files: \(reason)"
        case .conflictingPorts(let reason):
            return "conflicting ports: \(reason)"
        }
    }
}
