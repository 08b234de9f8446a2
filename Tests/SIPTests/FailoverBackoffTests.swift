import Testing
@testable import SIP

@Suite("Registration failover back-off")
struct FailoverBackoffTests {
    /// Start-up on 600 extensions: last good side, the other, a random 0…60 s, then rounds of
    /// both sides 15, 30, 60, 120, 120 s apart.
    @Test func theStaggeredSequence() {
        var backoff = FailoverBackoff(extensionsOnNode: 600)
        var generator = SplitMix(seed: 1)
        var attempts = [backoff.start()]
        for _ in 0..<13 {
            let last = attempts[attempts.count - 1]
            attempts.append(backoff.failed(on: last.side, using: &generator))
        }
        #expect(attempts.map(\.side) == [.primary, .secondary] + Array(repeating: [PlatformSide.primary, .secondary], count: 6).flatMap { $0 })
        let delays = attempts.map(\.delayMilliseconds)
        #expect(delays[0] == 0 && delays[1] == 0)
        #expect((0...60_000).contains(delays[2]))
        #expect(Array(delays[3...]) == [0, 15_000, 0, 30_000, 0, 60_000, 0, 120_000, 0, 120_000, 0])
        #expect(backoff.failures == 13)
    }

    /// The random wait spreads a node's extensions over the whole 0…N/10 s window.
    @Test func theRandomWaitSpreadsExtensions() {
        var generator = SplitMix(seed: 42)
        var waits: [Int64] = []
        for _ in 0..<1000 {
            var backoff = FailoverBackoff(extensionsOnNode: 500)
            let first = backoff.start()
            let second = backoff.failed(on: first.side, using: &generator)
            waits.append(backoff.failed(on: second.side, using: &generator).delayMilliseconds)
        }
        #expect(waits.allSatisfy { (0...50_000).contains($0) })
        #expect(waits.min()! < 2_000 && waits.max()! > 48_000)
        let mean = Double(waits.reduce(0, +)) / Double(waits.count)
        #expect(abs(mean - 25_000) < 2_500)
        // Ten waits per second of the window at most on average: no crowd at one instant.
        let perSecond = Dictionary(grouping: waits, by: { $0 / 1000 }).values.map(\.count)
        #expect(perSecond.max()! < 60)
    }

    /// Losing the side in use moves to the other at once; the lost side stays the last good one
    /// and leads the later rounds. Success makes a side the first to try.
    @Test func lossSuccessAndRetryAfter() {
        var generator = SplitMix(seed: 3)
        var backoff = FailoverBackoff(extensionsOnNode: 10)
        #expect(backoff.lost(.primary) == .init(side: .secondary, delayMilliseconds: 0))
        let next = backoff.failed(on: .secondary, using: &generator)
        #expect(next.side == .primary && (0...1_000).contains(next.delayMilliseconds))
        #expect(backoff.failed(on: .primary, using: &generator) == .init(side: .secondary, delayMilliseconds: 0))
        // The secondary said 503 with Retry-After: 90 and is tried next (after a round wait of 15 s): at least 90 s.
        #expect(backoff.failed(on: .secondary, using: &generator) == .init(side: .primary, delayMilliseconds: 15_000))
        #expect(backoff.failed(on: .primary, retryAfterSeconds: 90, using: &generator) == .init(side: .secondary, delayMilliseconds: 0))
        #expect(backoff.failed(on: .secondary, retryAfterSeconds: 5, using: &generator) == .init(side: .primary, delayMilliseconds: 30_000))
        #expect(backoff.failed(on: .primary, retryAfterSeconds: 200, using: &generator).side == .secondary)
        backoff.succeeded(on: .secondary)
        #expect(backoff.lastGood == .secondary && backoff.failures == 0)
        #expect(backoff.start() == .init(side: .secondary, delayMilliseconds: 0))
        let retry = backoff.failed(on: .secondary, using: &generator)
        #expect(retry == .init(side: .primary, delayMilliseconds: 0))
        var stubborn = FailoverBackoff(extensionsOnNode: 1, lastGood: .primary)
        _ = stubborn.start()
        _ = stubborn.failed(on: .primary, using: &generator)
        let wait = stubborn.failed(on: .secondary, using: &generator)
        #expect(wait.side == .primary && wait.delayMilliseconds <= 100)
        #expect(stubborn.failed(on: .primary, retryAfterSeconds: 120, using: &generator) == .init(side: .secondary, delayMilliseconds: 0))
        let stretched = stubborn.failed(on: .secondary, retryAfterSeconds: 120, using: &generator)
        #expect(stretched == .init(side: .primary, delayMilliseconds: 15_000))
    }

    /// Retry-After from the side that is tried next stretches the wait.
    @Test func retryAfterFromTheNextSide() {
        var generator = SplitMix(seed: 9)
        var backoff = FailoverBackoff(extensionsOnNode: 1, lastGood: .primary)
        _ = backoff.start()
        _ = backoff.failed(on: .primary, using: &generator)
        _ = backoff.failed(on: .secondary, using: &generator)  // → primary after the random wait
        _ = backoff.failed(on: .primary, using: &generator)  // → secondary at once
        // The secondary answers 503 Retry-After: 40; the next round starts with the primary 15 s on.
        #expect(backoff.failed(on: .secondary, retryAfterSeconds: 40, using: &generator) == .init(side: .primary, delayMilliseconds: 15_000))
        // The primary answers 503 Retry-After: 40 … the secondary at once (it is the other side).
        #expect(backoff.failed(on: .primary, retryAfterSeconds: 40, using: &generator) == .init(side: .secondary, delayMilliseconds: 0))
        // A side that asks for time and is tried right after gets it: lost(primary) → secondary, which says 503 Retry-After: 50.
        var lone = FailoverBackoff(extensionsOnNode: 1)
        _ = lone.lost(.secondary)  // → primary at once
        let after = lone.failed(on: .primary, retryAfterSeconds: 50, using: &generator)  // → last good (secondary) after the random wait
        #expect(after.side == .secondary && after.delayMilliseconds <= 100)
        let back = lone.failed(on: .secondary, retryAfterSeconds: 50, using: &generator)
        #expect(back == .init(side: .primary, delayMilliseconds: 0))
        let stretched = lone.failed(on: .primary, retryAfterSeconds: 50, using: &generator)
        #expect(stretched == .init(side: .secondary, delayMilliseconds: 15_000))
        var direct = FailoverBackoff(extensionsOnNode: 1, lastGood: .primary)
        _ = direct.start()
        _ = direct.failed(on: .primary, using: &generator)
        let sameSide = direct.failed(on: .primary, retryAfterSeconds: 30, using: &generator)  // the queued next attempt is the primary
        #expect(sameSide.side == .primary && sameSide.delayMilliseconds >= 30_000)
    }
}
