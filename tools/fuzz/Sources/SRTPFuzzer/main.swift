// libFuzzer entry for Tandem's own SRTP/SRTCP (AEAD_AES_128_GCM, Sources/WebRTC/SRTPAEAD.swift).
// Built with `-sanitize=fuzzer,address -parse-as-library`: libFuzzer supplies main().
// Every input is (1) handed to an inbound context as SRTP and as SRTCP, where it must be
// refused without a crash (or, by chance, accepted), and (2) taken as a plain RTP/RTCP
// packet: whatever an outbound context protects, a fresh inbound one must give back unchanged.
import FuzzDriver
import WebRTC

private let key = (0..<28).map { UInt8(($0 * 13 + 1) & 0xFF) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let input = Array(UnsafeBufferPointer(start: start, count: count))
    guard let inbound = try? SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .inbound),
          let outbound = try? SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .outbound),
          let check = try? SRTPContext(profile: .aeadAES128GCM, keyAndSalt: key, direction: .inbound) else { return 0 }
    _ = try? inbound.unprotectRTP(input)
    _ = try? inbound.unprotectRTCP(input)
    if let sealed = try? outbound.protectRTP(input) {
        precondition(sealed.count == input.count + 16)
        precondition((try? check.unprotectRTP(sealed)) == input, "SRTP round trip changed the packet")
    }
    if let sealed = try? outbound.protectRTCP(input) {
        precondition(sealed.count == input.count + 20)
        precondition((try? check.unprotectRTCP(sealed)) == input, "SRTCP round trip changed the packet")
    }
    return 0
}

@_cdecl("SRTPFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzz($0, $1) }
}
