// libFuzzer entry for the STUN message and ChannelData parsers (turn/STUN).
// Built with `-sanitize=fuzzer,address -parse-as-library`: libFuzzer supplies main().
import FuzzDriver
import STUN

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: start, count: count)
    if let m = try? STUNMessage.decode(bytes) {
        _ = try? m.username
        _ = try? m.realm
        _ = try? m.nonce
        _ = try? m.software
        _ = try? m.errorCode
        _ = try? m.unknownAttributes
        _ = try? m.lifetime
        _ = try? m.channelNumber
        _ = try? m.requestedTransport
        _ = try? m.addressFamily(.requestedAddressFamily)
        _ = try? m.evenPort
        _ = try? m.reservationToken
        _ = try? m.priority
        _ = try? m.iceControlling
        _ = try? m.xorAddress(.xorMappedAddress)
        _ = try? m.xorAddresses(.xorPeerAddress)
        _ = try? m.address(.mappedAddress)
        _ = m.unknownComprehensionRequired(known: [])
        _ = m.verifyIntegrity(key: [1, 2, 3])
        // Whatever decodes must re-encode and decode to the same attributes.
        let again = try? STUNMessage.decode(m.encode(fingerprint: true))
        precondition(again?.attributes.map(\.type) == m.attributes.map(\.type), "re-encode changed the attributes")
    }
    _ = try? STUNMessage.decode(bytes, allowTrailing: true)
    if let h = try? ChannelData.parseHeader(bytes) {
        precondition(h.length <= count - 4)
    }
    if count > 0 {
        _ = IPAddress(String(decoding: bytes.prefix(48), as: UTF8.self))
    }
    return 0
}

@_cdecl("STUNFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzz($0, $1) }
}
