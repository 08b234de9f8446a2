import Foundation
import G711
import Testing

@Suite("G.711")
struct G711Tests {
    /// Values of ITU-T G.711 Tables 1 and 2 (decoder output in 16-bit linear units).
    @Test func decodingMatchesTheStandardsTables() {
        let mu = G711.Law.muLaw
        #expect(mu.decodeSample(0x00) == -32124)
        #expect(mu.decodeSample(0x80) == 32124)
        #expect(mu.decodeSample(0x7F) == 0)
        #expect(mu.decodeSample(0xFF) == 0)
        #expect(mu.decodeSample(0xFE) == 8)
        #expect(mu.decodeSample(0x7E) == -8)
        #expect(mu.decodeSample(0xEF) == 132)  // segment 1 starts: (0x10 << 3 + 0x84) << 1 - 0x84 ... = 132
        let a = G711.Law.aLaw
        #expect(a.decodeSample(0xD5) == 8)
        #expect(a.decodeSample(0x55) == -8)
        #expect(a.decodeSample(0xAA) == 32256)
        #expect(a.decodeSample(0x2A) == -32256)
        #expect(a.decodeSample(0xD4) == 24)
    }

    @Test func silenceAndFullScaleEncodeToTheirCodes() {
        #expect(G711.Law.muLaw.encodeSample(0) == 0xFF)
        #expect(G711.Law.aLaw.encodeSample(0) == 0xD5)
        #expect(G711.Law.muLaw.encodeSample(.max) == 0x80)
        #expect(G711.Law.muLaw.encodeSample(.min) == 0x00)
        #expect(G711.Law.aLaw.encodeSample(.max) == 0xAA)
        #expect(G711.Law.aLaw.encodeSample(.min) == 0x2A)
    }

    /// Every code decodes to a value that encodes back to the same code (µ-law's
    /// negative zero, 0x7F, comes back as positive zero, 0xFF).
    @Test(arguments: [G711.Law.muLaw, .aLaw])
    func everyCodeRoundTrips(law: G711.Law) {
        for code in 0...255 {
            let back = law.encodeSample(law.decodeSample(UInt8(code)))
            if law == .muLaw, code == 0x7F { #expect(back == 0xFF) } else { #expect(back == UInt8(code), "code \(code)") }
        }
    }

    /// The table encoder agrees with the segment-search reference on all 65,536 inputs,
    /// and decoding is monotonic in the input.
    @Test(arguments: [G711.Law.muLaw, .aLaw])
    func tableEncoderAgreesWithTheReferenceEverywhere(law: G711.Law) {
        let all = (Int(Int16.min)...Int(Int16.max)).map { Int16($0) }
        let encoded = law.encode(all)
        var mismatches = 0
        var previous = Int16.min
        for (i, sample) in all.enumerated() {
            if encoded[i] != law.encodeSample(sample) { mismatches += 1 }
            let decoded = law.decodeSample(encoded[i])
            if decoded < previous { mismatches += 1 }
            previous = decoded
        }
        #expect(mismatches == 0)
    }

    /// Quantization error stays within half a step of the segment the sample is in.
    @Test(arguments: [G711.Law.muLaw, .aLaw])
    func quantizationErrorIsBounded(law: G711.Law) {
        let samples: [Int16] = stride(from: -32000, through: 32000, by: 7).map { Int16($0) }
        let back = law.decode(law.encode(samples))
        for (x, y) in zip(samples, back) {
            let step = max(16, Int(abs(Int32(x))) / 16)  // steps grow with the segment (2^(seg+1) units of 4 or 8)
            #expect(abs(Int(x) - Int(y)) <= step, "\(x) → \(y)")
        }
    }
}
