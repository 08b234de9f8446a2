// libFuzzer entry for the SIP message parser (sip/SIP): datagrams and stream framing.
// Built with `-sanitize=fuzzer,address -parse-as-library`: libFuzzer supplies main().
import FuzzDriver
import SIP

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafePointer<UInt8>, _ count: Int) -> CInt {
    let bytes = UnsafeBufferPointer(start: start, count: count)
    // Whatever fails gets its 400 built from the lines that still read; that must parse too.
    if let response = SIPMessage.badRequest(for: bytes, error: .malformedStartLine) {
        precondition((try? SIPMessage(parsing: response.serialized())) != nil, "a 400 did not parse")
    }
    if let message = try? SIPMessage(parsing: bytes) {
        try? message.validate()
        _ = (message.vias, message.from, message.to, message.contacts, message.cseq, message.callID, message.maxForwards, message.expires)
        for field in message.headers { _ = message.headers.values(field.name) }
        // What parses serializes to bytes that parse and serialize to the same bytes.
        let once = message.serialized()
        guard let again = try? SIPMessage(parsing: once) else { preconditionFailure("a serialized message did not parse") }
        precondition(again.serialized() == once, "serialize/parse/serialize changed the bytes")
        if message.isRequest { _ = message.response(statusCode: 400, reasonPhrase: "Bad Request", toTag: "t") }
    }
    // The same bytes as a stream, split in two at a point the input chooses.
    var framer = SIPStreamFramer(limits: SIPLimits(maximumMessageBytes: 4096))
    let cut = count > 0 ? Int(bytes[0]) % (count + 1) : 0
    for piece in [bytes[0..<cut], bytes[cut...]] {
        guard (try? framer.append(piece)) != nil else { return 0 }
        for _ in 0..<count + 1 {
            guard let item = try? framer.next() else { return 0 }
            guard item != nil else { break }
        }
    }
    return 0
}

@_cdecl("SIPFuzzer_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv) { fuzz($0, $1) }
}
