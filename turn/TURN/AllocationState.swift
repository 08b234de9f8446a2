import STUN

/// Lifetimes of allocations, permissions and channel bindings (RFC 8656 §3.2, §9, §12).
public struct LifetimePolicy: Sendable, Hashable {
    /// Allocation lifetime when the client asks for none or for less (RFC 8656: 600 s).
    public var defaultAllocation = 600
    /// Longest allocation lifetime granted (RFC 8656 §7.2 recommends 3600 s).
    public var maximumAllocation = 3600
    /// Permission lifetime (RFC 8656 §9: 300 s, not configurable by the client).
    public var permission = 300
    /// Channel binding lifetime (RFC 8656 §12: 600 s).
    public var channel = 600
    /// How long an expired channel number and peer stay reserved to each other (§12: 5 min).
    public var channelQuarantine = 300

    public init() {}

    /// The lifetime granted for a requested LIFETIME (Allocate, and Refresh other than 0):
    /// the request clamped into [default, maximum]; the default when absent.
    public func allocationLifetime(requested: UInt32?) -> Int {
        guard let requested else { return defaultAllocation }
        return min(max(Int(requested), defaultAllocation), maximumAllocation)
    }
}

/// A channel binding (RFC 8656 §12): a channel number tied to a peer transport address.
public struct ChannelBinding: Sendable, Hashable {
    public var number: UInt16
    public var peer: TransportAddress
    /// Monotonic milliseconds at which the binding expires.
    public var expiry: Int64
    /// Set once a sweep has counted this binding's expiry (it then sits in quarantine).
    var expiredCounted = false

    public func isActive(at now: Int64) -> Bool { now < expiry }
}

/// The protocol state of one allocation: its lifetime, permissions and channel bindings,
/// as a value with an explicit clock (monotonic milliseconds), so every transition is
/// testable without sockets or timers (RFC 8656 §7–§12).
public struct AllocationState: Sendable {
    public let policy: LifetimePolicy
    /// Monotonic milliseconds at which the allocation expires.
    public private(set) var expiry: Int64
    /// Installed permissions by peer IP (RFC 8656 §9: the port is ignored), with expiry.
    public private(set) var permissions: [IPAddress: Int64] = [:]
    /// Channel bindings by number, including those in their post-expiry quarantine.
    public private(set) var channels: [UInt16: ChannelBinding] = [:]
    /// Channel numbers by peer, for the peer → client direction.
    public private(set) var channelByPeer: [TransportAddress: UInt16] = [:]

    public init(policy: LifetimePolicy, lifetimeSeconds: Int, now: Int64) {
        self.policy = policy
        self.expiry = now + Int64(lifetimeSeconds) * 1000
    }

    public func isExpired(at now: Int64) -> Bool { now >= expiry }

    /// Refresh with a lifetime already chosen by ``LifetimePolicy/allocationLifetime(requested:)``.
    public mutating func refresh(lifetimeSeconds: Int, now: Int64) {
        expiry = now + Int64(lifetimeSeconds) * 1000
    }

    /// Installs or refreshes a permission (CreatePermission, ChannelBind), RFC 8656 §9.
    /// Returns true when the permission is new (not merely refreshed).
    @discardableResult
    public mutating func installPermission(for ip: IPAddress, now: Int64) -> Bool {
        let isNew = permissions[ip] == nil  // an expired, unswept one is still counted
        permissions[ip] = now + Int64(policy.permission) * 1000
        return isNew
    }

    /// Whether data to or from `ip` is allowed now.
    @inline(__always)
    public func hasPermission(for ip: IPAddress, now: Int64) -> Bool {
        guard let e = permissions[ip] else { return false }
        return now < e
    }

    /// The outcome of a ChannelBind request, RFC 8656 §11.2.
    public enum ChannelBindOutcome: Sendable, Equatable {
        case bound
        case refreshed
        /// The number is bound (or quarantined) to another peer: 400.
        case numberInUse
        /// The peer is bound (or quarantined) to another number: 400.
        case peerInUse
    }

    /// Binds or refreshes channel `number` to `peer`, and installs/refreshes the permission.
    public mutating func bindChannel(_ number: UInt16, to peer: TransportAddress, now: Int64) -> ChannelBindOutcome {
        if let existing = channels[number], existing.peer != peer, now < existing.expiry + Int64(policy.channelQuarantine) * 1000 {
            return .numberInUse
        }
        if let other = channelByPeer[peer], other != number, let b = channels[other], now < b.expiry + Int64(policy.channelQuarantine) * 1000 {
            return .peerInUse
        }
        let wasActive = channels[number].map { $0.peer == peer && $0.isActive(at: now) } ?? false
        if let old = channels[number], old.peer != peer { channelByPeer[old.peer] = nil }
        channels[number] = ChannelBinding(number: number, peer: peer, expiry: now + Int64(policy.channel) * 1000)
        channelByPeer[peer] = number
        installPermission(for: peer.ip, now: now)
        return wasActive ? .refreshed : .bound
    }

    /// The active binding of a channel number (client → peer ChannelData).
    @inline(__always)
    public func channel(_ number: UInt16, now: Int64) -> ChannelBinding? {
        guard let b = channels[number], now < b.expiry else { return nil }
        return b
    }

    /// The active channel number bound to `peer` (peer → client direction).
    @inline(__always)
    public func channelNumber(for peer: TransportAddress, now: Int64) -> UInt16? {
        guard let n = channelByPeer[peer], let b = channels[n], now < b.expiry else { return nil }
        return n
    }

    /// Drops expired permissions and channel bindings past their quarantine.
    /// Returns how many permissions and active bindings expired since the last sweep.
    public mutating func sweep(now: Int64) -> (permissions: Int, channels: Int) {
        var expiredPermissions = 0
        for (ip, e) in permissions where e <= now {
            permissions[ip] = nil
            expiredPermissions += 1
        }
        var expiredChannels = 0
        for (n, b) in channels where b.expiry <= now {
            if !b.expiredCounted {
                channels[n]?.expiredCounted = true
                expiredChannels += 1
            }
            if now >= b.expiry + Int64(policy.channelQuarantine) * 1000 {
                channels[n] = nil
                if channelByPeer[b.peer] == n { channelByPeer[b.peer] = nil }
            }
        }
        return (expiredPermissions, expiredChannels)
    }

    /// Active permissions and channel bindings now.
    public func activeCounts(now: Int64) -> (permissions: Int, channels: Int) {
        (permissions.values.filter { $0 > now }.count, channels.values.filter { $0.isActive(at: now) }.count)
    }
}

