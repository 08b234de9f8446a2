import Datapath
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

private let loopback = DatagramAddress(ipv4: 0x7F00_0001, port: 0)
private let loopback6 = DatagramAddress(ipv6High: 0, low: 1, port: 0)

@Suite("Datagram addresses")
struct DatagramAddressTests {
    @Test func sockaddrRoundTripsForBothFamilies() throws {
        for address in [DatagramAddress(ipv4: 0xC000_0201, port: 3478), DatagramAddress(ipv6High: 0x2001_0DB8_0000_0000, low: 0x0000_0000_0000_0001, port: 65535)] {
            var storage = sockaddr_storage()
            let length = address.write(to: &storage)
            #expect(length == socklen_t(address.isIPv6 ? MemoryLayout<sockaddr_in6>.size : MemoryLayout<sockaddr_in>.size))
            let back = withUnsafePointer(to: &storage) { DatagramAddress(UnsafeRawPointer($0)) }
            #expect(back == address)
        }
    }

    @Test func unknownFamiliesAreRefused() {
        var storage = sockaddr_storage()
        storage.ss_family = sa_family_t(AF_UNIX)
        #expect(withUnsafePointer(to: &storage) { DatagramAddress(UnsafeRawPointer($0)) } == nil)
    }

    @Test func descriptions() {
        #expect(DatagramAddress(ipv4: 0x7F00_0001, port: 80).description == "127.0.0.1:80")
        #expect(DatagramAddress(ipv6High: 0x2001_0DB8_0000_0000, low: 1, port: 5).description == "[2001:db8:0:0:0:0:0:1]:5")
    }
}

@Suite("UDP sockets and batches")
struct SocketTests {
    @Test func sendAndReceiveOverLoopback() throws {
        let a = try UDPSocket(binding: loopback)
        let b = try UDPSocket(binding: loopback)
        #expect(a.localAddress.port != 0)
        guard case .sent = a.send([1, 2, 3], to: b.localAddress) else { Issue.record("send failed"); return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2, alignment: 1)
        defer { buffer.deallocate() }
        let got = try #require(waitForDatagram(b, into: buffer))
        #expect(got.length == 2 && got.truncated, "a datagram larger than the buffer is reported as truncated")
        #expect(got.source == a.localAddress)
        #expect(b.receive(into: buffer) == nil, "nothing left")
    }

    @Test func ipv6SocketsAreIPv6Only() throws {
        guard let six = try? UDPSocket(binding: loopback6) else { return }  // no IPv6 on this host
        let four = try UDPSocket(binding: DatagramAddress(ipv4: 0x7F00_0001, port: six.localAddress.port))
        #expect(four.localAddress.port == six.localAddress.port)
    }

    @Test func bindingATakenPortSaysSo() throws {
        let a = try UDPSocket(binding: loopback)
        #expect(throws: SocketError.self) { try UDPSocket(binding: a.localAddress) }
        do {
            _ = try UDPSocket(binding: a.localAddress)
        } catch {
            #expect(error.isAddressInUse)
        }
    }

    @Test func batchesCarryManyDatagramsPerCall() throws {
        let server = try UDPSocket(binding: loopback)
        let clients = try (0..<5).map { _ in try UDPSocket(binding: loopback) }
        for (i, c) in clients.enumerated() { _ = c.send([UInt8](repeating: UInt8(i), count: i + 1), to: server.localAddress) }
        let input = ReceiveBatch(capacity: 8, maximumDatagramSize: 2048)
        var seen: [DatagramAddress: [UInt8]] = [:]
        let deadline = Date().addingTimeInterval(2)
        while seen.count < 5 && Date() < deadline {
            let n = input.receive(from: server)
            for i in 0..<n { seen[try #require(input.source(i))] = Array(input.payload(i)) }
            if n == 0 { usleep(1000) }
        }
        for (i, c) in clients.enumerated() { #expect(seen[c.localAddress] == [UInt8](repeating: UInt8(i), count: i + 1)) }

        // Back through one sendmmsg: one datagram framed in place, one copied, to each client.
        let output = SendBatch(socket: server, capacity: 3)
        for c in clients {
            let slot = output.nextSlot()
            slot.storeBytes(of: UInt32(0xA1B2_C3D4).bigEndian, as: UInt32.self)
            output.commit(length: 4, to: c.localAddress)
        }
        output.flush()
        #expect(output.pending == 0)
        #expect(output.takeTotals() == (5, 0))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 1)
        defer { buffer.deallocate() }
        for c in clients {
            let got = try #require(waitForDatagram(c, into: buffer))
            #expect(got.length == 4 && Array(buffer[0..<4]) == [0xA1, 0xB2, 0xC3, 0xD4])
        }
    }

    /// With SO_TIMESTAMPNS on the socket and a batch that keeps ancillary data, each datagram
    /// carries the wall-clock time the kernel received it; without either, there is none.
    @Test func receiveTimestampsComeFromTheKernel() throws {
        let stamped = try UDPSocket(binding: loopback, options: .init(receiveTimestamps: true))
        let plain = try UDPSocket(binding: loopback)
        let sender = try UDPSocket(binding: loopback)
        let before = Int64(Date().timeIntervalSince1970 * 1e9)
        _ = sender.send([1, 2, 3], to: stamped.localAddress)
        _ = sender.send([4], to: plain.localAddress)
        let batch = ReceiveBatch(capacity: 4, maximumDatagramSize: 256, receiveTimestamps: true)
        var n = 0
        for _ in 0..<200 where n == 0 { n = batch.receive(from: stamped); if n == 0 { usleep(1000) } }
        let after = Int64(Date().timeIntervalSince1970 * 1e9)
        #expect(n == 1 && Array(batch.payload(0)) == [1, 2, 3])
        let arrival = try #require(batch.arrivalNanoseconds(0))
        // The clocks' resolutions differ (Date is µs): allow a millisecond either side.
        #expect(arrival >= before - 1_000_000 && arrival <= after + 1_000_000)

        n = 0
        for _ in 0..<200 where n == 0 { n = batch.receive(from: plain); if n == 0 { usleep(1000) } }
        #expect(n == 1 && batch.arrivalNanoseconds(0) == nil)
        _ = sender.send([5], to: stamped.localAddress)
        let unstamped = ReceiveBatch(capacity: 4, maximumDatagramSize: 256)
        n = 0
        for _ in 0..<200 where n == 0 { n = unstamped.receive(from: stamped); if n == 0 { usleep(1000) } }
        #expect(n == 1 && unstamped.arrivalNanoseconds(0) == nil)
    }

    @Test func aRefusedDatagramDoesNotHoldBackTheRest() throws {
        let server = try UDPSocket(binding: loopback)
        let client = try UDPSocket(binding: loopback)
        let output = SendBatch(socket: server, capacity: 4)
        output.append([1], to: client.localAddress)
        output.append([2], to: DatagramAddress(ipv6High: 0, low: 1, port: 9))  // wrong family for an IPv4 socket
        output.append([3], to: client.localAddress)
        output.flush()
        #expect(output.takeTotals() == (2, 1))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 1)
        defer { buffer.deallocate() }
        #expect(try #require(waitForDatagram(client, into: buffer)).length == 1 && buffer[0] == 1)
        #expect(try #require(waitForDatagram(client, into: buffer)).length == 1 && buffer[0] == 3)
    }
}

@Suite("Datapath loop")
struct LoopTests {
    final class Received: Sendable {
        let bytes = Mutex<[UInt8]>([])
        func append(_ b: UInt8) { bytes.withLock { $0.append(b) } }
        var all: [UInt8] { bytes.withLock { $0 } }
    }

    final class Collector: ReadableHandler {
        let socket: UDPSocket
        let received: Received
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 16, alignment: 1)
        init(socket: UDPSocket, received: Received) {
            self.socket = socket
            self.received = received
        }
        deinit { buffer.deallocate() }
        func readable() {
            while socket.receive(into: buffer) != nil { received.append(buffer[0]) }
        }
    }

    @Test func tasksTimersAndReadinessRunOnTheLoopThread() async throws {
        let loop = try DatapathLoop(name: "test")
        loop.start()
        #expect(!loop.inLoop)
        #expect(try await loop.submit { loop.inLoop })
        let order = Mutex<[String]>([])
        let fired = try await withCheckedThrowingContinuation { (c: CheckedContinuation<Bool, any Error>) in
            loop.execute {
                loop.schedule(inMilliseconds: 30) { order.withLock { $0.append("late") }; c.resume(returning: loop.inLoop) }
                loop.schedule(inMilliseconds: 5) { order.withLock { $0.append("early") } }
            }
        }
        #expect(fired)
        #expect(order.withLock { $0 } == ["early", "late"])

        let socket = try UDPSocket(binding: loopback)
        let received = Received()
        let bound = LoopBound(Collector(socket: socket, received: received), loop: loop)
        let fd = socket.fd
        try await loop.submit { try loop.register(fd, bound.value) }
        let sender = try UDPSocket(binding: loopback)
        for b: UInt8 in 1...3 { _ = sender.send([b], to: socket.localAddress) }
        for _ in 0..<200 where received.all.count < 3 { try await Task.sleep(for: .milliseconds(5)) }
        #expect(received.all == [1, 2, 3])
        try await loop.submit { loop.deregister(fd) }
        _ = sender.send([4], to: socket.localAddress)
        try await Task.sleep(for: .milliseconds(50))
        #expect(received.all == [1, 2, 3], "a deregistered socket is no longer read")

        await loop.stop()
        // After the loop has stopped, work sent to it is refused instead of hanging.
        #expect(!loop.execute {})
        await #expect(throws: LoopStopped.self) { try await loop.submit { 42 } }
    }

    @Test func theLoopThreadCarriesItsNameInTheKernel() async throws {
        let loop = try DatapathLoop(name: "turn-7")
        loop.start()
        // What `top -H` and /proc/<pid>/task/*/comm show for the loop's thread.
        let comm = try await loop.submit { try String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8) }
        #expect(comm.trimmingCharacters(in: .whitespacesAndNewlines) == "turn-7")
        await loop.stop()
    }

    @Test func iterationEndHooksRunAfterEvents() async throws {
        let loop = try DatapathLoop(name: "hooks", batchWindowMicroseconds: 50)
        loop.start()
        let count = Mutex(0)
        try await loop.submit { loop.addIterationEndHook { count.withLock { $0 += 1 } } }
        for _ in 0..<3 { try await loop.submit {} }
        #expect(count.withLock { $0 } >= 3)
        await loop.stop()
    }

    @Test func aTaskQueuedByAHookRunsWithoutAnotherWakeUp() async throws {
        let loop = try DatapathLoop(name: "hook-task")
        loop.start()
        let ran = Mutex(false)
        let queued = Mutex(false)
        try await loop.submit {
            loop.addIterationEndHook {
                if queued.withLock({ let first = !$0; $0 = true; return first }) {
                    loop.execute { ran.withLock { $0 = true } }
                }
            }
        }
        // Nothing else wakes the loop: no timers, no sockets, no more tasks from outside.
        for _ in 0..<200 where !ran.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(5)) }
        #expect(ran.withLock { $0 })
        await loop.stop()
    }

    /// When each wake-up began and ended its work and how many datagrams it read, readable
    /// from the test's thread.
    final class WakeLog: Sendable {
        let spans = Mutex<[(start: UInt64, end: UInt64, datagrams: Int)]>([])
    }

    /// Records when each wake-up read the socket, and works a while on every one.
    final class SlowReader: ReadableHandler {
        let socket: UDPSocket
        let wakes: WakeLog
        let workNanoseconds: UInt64
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 8)
        init(socket: UDPSocket, wakes: WakeLog, workNanoseconds: UInt64) {
            self.socket = socket
            self.wakes = wakes
            self.workNanoseconds = workNanoseconds
        }
        deinit { buffer.deallocate() }
        func readable() {
            let start = DatapathLoop.monotonicNanoseconds()
            var datagrams = 0
            while socket.receive(into: buffer) != nil { datagrams += 1 }
            while DatapathLoop.monotonicNanoseconds() - start < workNanoseconds {}
            wakes.spans.withLock { $0.append((start, DatapathLoop.monotonicNanoseconds(), datagrams)) }
        }
    }

    /// Sends a datagram every millisecond for 400 ms to a loop with an 8 ms window whose reader
    /// works `work` per wake-up; returns the wake-ups after the first eight (the rule engages
    /// after the first few, which come per datagram).
    private func moderatedWakeUps(work: UInt64) async throws -> [(start: UInt64, end: UInt64, datagrams: Int)] {
        let loop = try DatapathLoop(name: "moderated", batchWindowMicroseconds: 8_000)
        loop.start()
        let socket = try UDPSocket(binding: loopback)
        let wakes = WakeLog()
        let reader = LoopBound(SlowReader(socket: socket, wakes: wakes, workNanoseconds: work), loop: loop)
        let fd = socket.fd
        try await loop.submit { try loop.register(fd, reader.value) }
        let sender = try UDPSocket(binding: loopback)
        for _ in 0..<400 {
            _ = sender.send([1], to: socket.localAddress)
            try await Task.sleep(for: .milliseconds(1))
        }
        try await loop.submit { loop.deregister(fd) }
        await loop.stop()
        return Array(wakes.spans.withLock { $0 }.dropFirst(8))
    }

    private func median(_ values: [Double]) -> Double { values.isEmpty ? 0 : values.sorted()[values.count / 2] }

    @Test func underModerationAnIdleLoopRestsAWindowAndReadsABatch() async throws {
        // Datagrams every millisecond, little work: out of work, the loop rests until 8 ms
        // after its last wake-up instead of waking per datagram, and reads the batch that
        // gathered (without moderation: a wake-up every millisecond, one datagram each).
        let spans = try await moderatedWakeUps(work: 200_000)
        #expect(spans.count >= 6, "wake-ups after the first eight: \(spans.count)")
        let gaps = zip(spans, spans.dropFirst()).map { Double($1.start - $0.start) / 1e6 }
        #expect(median(gaps) >= 7.9, "median gap \(median(gaps)) ms between wake-ups: at least a window")
        #expect(median(spans.map { Double($0.datagrams) }) >= 4, "datagrams per wake-up: \(spans.map(\.datagrams))")
    }

    @Test func underModerationALoopWithWorkWaitingGoesOnAtOnce() async throws {
        // 6 ms of work per wake-up and a datagram every millisecond: when the work ends,
        // datagrams are waiting, so the loop reads them at once; a rest until a window after
        // the wake-up would rest 2 ms, and one of a whole window after the work 8 ms. The rest
        // is compared with 1 ms: what a busy machine's scheduling adds to the median is far less.
        let spans = try await moderatedWakeUps(work: 6_000_000)
        #expect(spans.count >= 20, "wake-ups after the first eight: \(spans.count)")
        let rests = zip(spans, spans.dropFirst()).map { Double($1.start - $0.end) / 1e6 }
        #expect(median(rests) < 1, "median rest \(median(rests)) ms after the work: none with datagrams waiting")
    }

    @Test func stoppingAnUnstartedLoopReturns() async throws {
        let loop = try DatapathLoop(name: "idle")
        await loop.stop()
    }
}

/// Waits up to a second for one datagram.
private func waitForDatagram(_ socket: UDPSocket, into buffer: UnsafeMutableRawBufferPointer) -> (length: Int, source: DatagramAddress, truncated: Bool)? {
    for _ in 0..<1000 {
        if let got = socket.receive(into: buffer) { return got }
        usleep(1000)
    }
    return nil
}

@Suite("Receive moderation")
struct ReceiveModerationTests {
    /// Feeds `count` wake-ups, `gap` nanoseconds apart, each finding `ready` descriptors;
    /// returns whether the last one pauses.
    private func feed(_ m: inout ReceiveModeration, from start: UInt64, count: Int, gap: UInt64, ready: Int) -> (pauses: Bool, end: UInt64) {
        var now = start
        var pauses = false
        for _ in 0..<count {
            now += gap
            pauses = m.wake(ready: ready, at: now)
        }
        return (pauses, now)
    }

    @Test func lightLoadNeverPauses() {
        var m = ReceiveModeration(windowMicroseconds: 200)
        // One datagram every millisecond: a 200 µs pause would gather 0.2 of one.
        #expect(!feed(&m, from: 0, count: 1000, gap: 1_000_000, ready: 1).pauses)
        #expect(!m.moderating)
    }

    @Test func loadAboveOneArrivalPerWindowPauses() {
        var m = ReceiveModeration(windowMicroseconds: 200)
        // One datagram every 100 µs: two per window.
        #expect(feed(&m, from: 0, count: 100, gap: 100_000, ready: 1).pauses)
    }

    @Test func moderationHoldsNearTheThresholdAndStopsWhenLoadFalls() {
        var m = ReceiveModeration(windowMicroseconds: 200)
        var (pauses, now) = feed(&m, from: 0, count: 100, gap: 100_000, ready: 1)
        #expect(pauses)
        // Then one datagram every 300 µs: two thirds of one per window, under the start
        // threshold but over the stop one, so it keeps pausing.
        for _ in 0..<200 {
            now += 300_000
            pauses = m.wake(ready: 1, at: now)
            #expect(pauses)
        }
        // One datagram every 800 µs: a quarter of one per window, so it stops.
        (pauses, now) = feed(&m, from: now, count: 100, gap: 800_000, ready: 1)
        #expect(!pauses)
        // And the same load that kept it on does not turn it on again from off.
        #expect(!feed(&m, from: now, count: 200, gap: 290_000, ready: 1).pauses)
    }

    @Test func anIdleGapEndsModerationAtOnce() {
        var m = ReceiveModeration(windowMicroseconds: 100)
        let (pauses, now) = feed(&m, from: 0, count: 100, gap: 20_000, ready: 3)
        #expect(pauses)
        // Ten seconds of silence count as the longest gap, which outweighs the history.
        let afterSilence = m.wake(ready: 1, at: now + 10_000_000_000)
        #expect(!afterSilence)
    }

    @Test func aZeroWindowAndEmptyWakeUpsNeverPause() {
        var off = ReceiveModeration(windowMicroseconds: 0)
        #expect(!feed(&off, from: 0, count: 100, gap: 1_000, ready: 50).pauses)
        var m = ReceiveModeration(windowMicroseconds: 200)
        let empty = m.wake(ready: 0, at: 1_000)
        #expect(!empty)
    }
}
