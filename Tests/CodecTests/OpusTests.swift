import Foundation
import Opus
import Testing

/// A sine at `frequency` Hz, `count` samples at 8 kHz.
func sine(frequency: Double, count: Int, amplitude: Double = 12000, rate: Double = 8000) -> [Int16] {
    (0..<count).map { Int16(amplitude * sin(2 * Double.pi * frequency * Double($0) / rate)) }
}

/// Signal-to-noise ratio in dB of `output` against `input`, at the best lag up to `maxLag`.
func snr(_ input: [Int16], _ output: [Int16], skip: Int, maxLag: Int) -> Double {
    var best = -Double.infinity
    for lag in 0...maxLag {
        var signal = 0.0, noise = 0.0
        for i in skip..<(min(input.count, output.count - lag)) {
            let x = Double(input[i]), e = Double(output[i + lag]) - x
            signal += x * x
            noise += e * e
        }
        best = max(best, 10 * log10(signal / max(noise, 1)))
    }
    return best
}

@Suite("Opus")
struct OpusTests {
    /// A 1 kHz tone through the 8 kHz encoder and decoder comes back with a good SNR.
    @Test func roundTripKeepsATone() throws {
        let encoder = try OpusEncoder(.init(bitrate: 24000, complexity: 5))
        let decoder = try OpusDecoder(sampleRate: 8000)
        let input = sine(frequency: 1000, count: 8000)
        var output: [Int16] = []
        for frame in stride(from: 0, to: input.count, by: 160) {
            let packet = try encoder.encode(Array(input[frame..<(frame + 160)]))
            #expect(packet.count > 2 && packet.count < 200)
            #expect(packet.withUnsafeBytes { Opus.sampleCount(of: $0, sampleRate: 48000) } == 960)
            output += try decoder.decode(packet)
        }
        #expect(output.count == input.count)
        let quality = snr(input, output, skip: 800, maxLag: 200)
        #expect(quality > 15, "SNR \(quality) dB")
    }

    /// The same stream decoded at 48 kHz has six times the samples (a browser-rate decoder).
    @Test func decoderRateIsTheCallersChoice() throws {
        let encoder = try OpusEncoder()
        let wide = try OpusDecoder(sampleRate: 48000)
        let packet = try encoder.encode(sine(frequency: 440, count: 160))
        #expect(try wide.decode(packet).count == 960)
    }

    /// A lost frame is recovered from the next packet's in-band FEC, or concealed.
    @Test func lossIsConcealedOrRecoveredFromFEC() throws {
        let encoder = try OpusEncoder(.init(bitrate: 24000, inbandFEC: true, expectedLossPercent: 20))
        let decoder = try OpusDecoder(sampleRate: 8000)
        let input = sine(frequency: 500, count: 160 * 20)
        let packets = try stride(from: 0, to: input.count, by: 160).map { try encoder.encode(Array(input[$0..<($0 + 160)])) }
        var pcm = [Int16](repeating: 0, count: 160)
        for p in packets[0..<10] { _ = try decoder.decode(p) }
        // Packet 10 is lost: recover it from packet 11's FEC data, then decode 11.
        let recovered = try packets[11].withUnsafeBytes { p in try pcm.withUnsafeMutableBufferPointer { try decoder.decode(p, into: $0, fec: true) } }
        #expect(recovered == 160)
        #expect(pcm.contains { $0 != 0 })
        _ = try decoder.decode(packets[11])
        // Packet 12 lost with no FEC to use: concealment fills the frame.
        let concealed = try pcm.withUnsafeMutableBufferPointer { try decoder.concealLoss(into: $0) }
        #expect(concealed == 160)
        #expect(pcm.contains { $0 != 0 })
    }

    @Test func malformedPacketsAreTypedErrors() throws {
        let decoder = try OpusDecoder()
        // TOC code 3 with a frame count of 0 is invalid (RFC 6716 §3.2.5).
        #expect(throws: OpusError.self) { try decoder.decode([0x03, 0x00]) }
        #expect([UInt8]().withUnsafeBytes { Opus.sampleCount(of: $0, sampleRate: 8000) } == nil)
        #expect(throws: OpusError.self) { try OpusEncoder(.init(sampleRate: 11025)) }
    }

    @Test func complexityIsAdjustableLive() throws {
        let encoder = try OpusEncoder(.init(complexity: 5))
        #expect(encoder.complexity == 5)
        encoder.complexity = 1
        #expect(encoder.complexity == 1)
        encoder.complexity = 42
        #expect(encoder.complexity == 10)
    }
}
