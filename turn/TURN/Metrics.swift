import Metrics
import Synchronization

/// The TURN server's metrics (swift-metrics). Hot-path counts are kept per event loop as
/// plain integers and published here on each housekeeping tick.
final class TURNMetrics: Sendable {
    let allocations = Gauge(label: "tandem_turn_allocations")
    let permissions = Gauge(label: "tandem_turn_permissions")
    let channels = Gauge(label: "tandem_turn_channels")
    let allocationsCreated = Counter(label: "tandem_turn_allocations_created_total")
    let allocationsDeleted = Counter(label: "tandem_turn_allocations_deleted_total")
    let packetsClientToPeer = Counter(label: "tandem_turn_relayed_packets_total", dimensions: [("direction", "client_to_peer")])
    let packetsPeerToClient = Counter(label: "tandem_turn_relayed_packets_total", dimensions: [("direction", "peer_to_client")])
    let bytesClientToPeer = Counter(label: "tandem_turn_relayed_bytes_total", dimensions: [("direction", "client_to_peer")])
    let bytesPeerToClient = Counter(label: "tandem_turn_relayed_bytes_total", dimensions: [("direction", "peer_to_client")])
    let authFailures: [String: Counter]
    let drops: [String: Counter]
    let requests: [String: Counter]
    let errorResponses = Counter(label: "tandem_turn_error_responses_total")

    /// Live counts shared by all loops (changed only on the control path).
    let allocationCount = Atomic<Int>(0)
    let permissionCount = Atomic<Int>(0)
    let channelCount = Atomic<Int>(0)
    /// Bytes relayed since start, both directions (advanced on each publication).
    let relayedByteCount = Atomic<Int>(0)

    static let authFailureReasons = ["missing_integrity", "malformed_username", "expired_username", "wrong_realm", "bad_integrity", "stale_nonce", "wrong_credentials"]
    static let dropReasons = ["malformed", "no_allocation", "no_permission", "no_channel", "rate_limited", "bandwidth", "forbidden_peer", "send_failed"]
    static let methods = ["Binding", "Allocate", "Refresh", "CreatePermission", "ChannelBind", "Send", "other"]

    init() {
        authFailures = Dictionary(uniqueKeysWithValues: Self.authFailureReasons.map { ($0, Counter(label: "tandem_turn_auth_failures_total", dimensions: [("reason", $0)])) })
        drops = Dictionary(uniqueKeysWithValues: Self.dropReasons.map { ($0, Counter(label: "tandem_turn_dropped_packets_total", dimensions: [("reason", $0)])) })
        requests = Dictionary(uniqueKeysWithValues: Self.methods.map { ($0, Counter(label: "tandem_turn_requests_total", dimensions: [("method", $0)])) })
    }

    func authFailure(_ reason: String) { authFailures[reason]?.increment() }
    func request(_ method: String) { (requests[method] ?? requests["other"])?.increment() }
}

/// Counts kept by one event loop between two publications.
struct LoopCounters {
    var packetsClientToPeer = 0
    var packetsPeerToClient = 0
    var bytesClientToPeer = 0
    var bytesPeerToClient = 0
    var dropMalformed = 0
    var dropNoAllocation = 0
    var dropNoPermission = 0
    var dropNoChannel = 0
    var dropRateLimited = 0
    var dropBandwidth = 0
    var dropForbiddenPeer = 0
    /// Datagrams the kernel would not take (full socket buffer, too large).
    var dropSendFailed = 0

    mutating func publish(to m: TURNMetrics) {
        func push(_ c: Counter?, _ v: inout Int) {
            if v > 0 { c?.increment(by: Int64(v)); v = 0 }
        }
        m.relayedByteCount.add(bytesClientToPeer + bytesPeerToClient, ordering: .relaxed)
        push(m.packetsClientToPeer, &packetsClientToPeer)
        push(m.packetsPeerToClient, &packetsPeerToClient)
        push(m.bytesClientToPeer, &bytesClientToPeer)
        push(m.bytesPeerToClient, &bytesPeerToClient)
        push(m.drops["malformed"], &dropMalformed)
        push(m.drops["no_allocation"], &dropNoAllocation)
        push(m.drops["no_permission"], &dropNoPermission)
        push(m.drops["no_channel"], &dropNoChannel)
        push(m.drops["rate_limited"], &dropRateLimited)
        push(m.drops["bandwidth"], &dropBandwidth)
        push(m.drops["forbidden_peer"], &dropForbiddenPeer)
        push(m.drops["send_failed"], &dropSendFailed)
        m.allocations.record(m.allocationCount.load(ordering: .relaxed))
        m.permissions.record(m.permissionCount.load(ordering: .relaxed))
        m.channels.record(m.channelCount.load(ordering: .relaxed))
    }
}
