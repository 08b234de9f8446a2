import Logging
import NIOCore

/// The machine's own addresses, for the default relay addresses.
public enum HostAddresses {
    /// The unicast, non-loopback, non-link-local addresses of the host's interfaces
    /// (IPv4 first, no duplicates), from `getifaddrs` via NIO; `[127.0.0.1]` when there
    /// are none or the interfaces cannot be read.
    public static func relayCandidates(logger: Logger? = nil) -> [IPAddress] {
        let devices: [NIONetworkDevice]
        do {
            devices = try System.enumerateDevices()
        } catch {
            logger?.warning("Cannot enumerate network interfaces", metadata: ["error": "\(error)"])
            return [.ipv4Loopback]
        }
        return relayCandidates(from: devices.compactMap { $0.address.flatMap(IPAddress.init) })
    }

    /// Filters and orders `addresses` as ``relayCandidates(logger:)`` does.
    public static func relayCandidates(from addresses: [IPAddress]) -> [IPAddress] {
        var seen = Set<IPAddress>()
        let usable = addresses.filter { address in
            !address.isLoopback && !address.isLinkLocal && !address.isUnspecified && seen.insert(address).inserted
        }
        let ordered = usable.filter { $0.family == .ipv4 } + usable.filter { $0.family == .ipv6 }
        return ordered.isEmpty ? [.ipv4Loopback] : ordered
    }
}
