import Datapath

extension TransportAddress {
    /// The same address and port as the datapath carries it.
    @inline(__always)
    public init(_ address: DatagramAddress) {
        let ip: IPAddress = address.isIPv6 ? .v6(address.high, address.low) : .v4(UInt32(truncatingIfNeeded: address.low))
        self.init(ip: ip, port: address.port)
    }
}

extension DatagramAddress {
    /// The datapath form of a STUN transport address.
    @inline(__always)
    public init(_ address: TransportAddress) {
        switch address.ip {
        case .v4(let a): self.init(ipv4: a, port: address.port)
        case .v6(let hi, let lo): self.init(ipv6High: hi, low: lo, port: address.port)
        }
    }
}
