// libFuzzer entry for the RTP header and RTCP compound parsers (Sources/Media).
// Built with `-sanitize=fuzzer,address -parse-as-library`: libFuzzer supplies main().
import FuzzDriver
import Media

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    if let header = try? RTPHeader(parsing: bytes) {
        precondition(header.headerLength + header.payloadLength + header.paddingLength == count)
        _ = Array(header.payload(in: bytes))
    }
    if let packets = try? RTCPPacket.parseCompound(bytes) {
        // Whatever parses must serialize to bytes that parse to the same packets.
        let again = RTCPPacket.serializeCompound(packets).withUnsafeBytes { try? RTCPPacket.parseCompound($0) }
        precondition(again == packets, "serialize/parse changed the packets")
    }
    _ = TelephoneEvent(parsing: Array(bytes.prefix(8)))
    return 0
}

@_cdecl("RTPFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzz($0, $1) }
}
