// libFuzzer entry for the SDP parser (Sources/SDP) and its typed attributes.
// Built with `-sanitize=fuzzer,address -parse-as-library`: libFuzzer supplies main().
import FuzzDriver
import SDP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: start, count: count)
    guard let description = try? SessionDescription(parsing: bytes) else { return 0 }
    _ = description.groups
    _ = description.fingerprints
    for media in description.media {
        _ = description.iceCredentials(of: media)
        _ = description.direction(of: media)
        _ = media.candidates
        _ = media.rtpMaps
        _ = media.rtcpFeedback
        _ = media.ssrcs
        _ = media.setup
        for pt in media.payloadTypes { _ = media.formatParameters(of: pt)?.parameters }
        // SDES lines (RFC 4568) that parse must serialize to a line that parses the same.
        for crypto in media.cryptoAttributes {
            precondition((try? SDESCrypto(parsing: crypto.value)) == crypto, "a=crypto serialize/parse changed the line")
        }
    }
    // Whatever parses must serialize to text that parses to the same value.
    let again = try? SessionDescription(parsing: description.serialized)
    precondition(again == description, "serialize/parse changed the description")
    return 0
}

@_cdecl("SDPFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzz($0, $1) }
}
