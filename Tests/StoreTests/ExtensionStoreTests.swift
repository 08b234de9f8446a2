import Foundation
import Logging
import Testing

@testable import Store

@Suite("Store: extensions")
struct ExtensionStoreTests {
    let logger = Logger(label: "test.store")

    @Test func addListReplaceRemove() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, logger: logger)
        defer { try? store.close() }
        #expect(try await store.extensions().isEmpty)
        let before = try await store.extensionsChangeMark()
        let records = [
            ExtensionRecord(number: "3010", authentication: .digest, digestUsername: "3010", digestPassword: "pw3010", realm: "pbx"),
            ExtensionRecord(number: "999", authentication: .none),
            ExtensionRecord(number: "3002", authentication: .digest, digestUsername: "u", digestPassword: "p"),
        ]
        try await store.addExtensions(records)
        // Numeric order, not text order.
        #expect(try await store.extensions().map(\.number) == ["999", "3002", "3010"])
        #expect(try await store.extensions().first { $0.number == "3010" } == records[0])
        let after = try await store.extensionsChangeMark()
        #expect(after != nil && after != before)

        // Adding an existing one without replace writes nothing at all.
        let clash = [ExtensionRecord(number: "4000", authentication: .none), ExtensionRecord(number: "3002", authentication: .none)]
        await #expect(throws: StoreError.duplicateExtensions(["3002"])) { try await store.addExtensions(clash) }
        #expect(try await store.extensions().count == 3)
        try await store.addExtensions(clash, replace: true)
        #expect(try await store.extensions().first { $0.number == "3002" }?.authentication == ExtensionRecord.Authentication.none)
        #expect(try await store.extensions().count == 4)

        #expect(try await store.removeExtensions(["3002", "3010", "5555"]) == 2)
        #expect(try await store.extensions().map(\.number) == ["999", "4000"])
    }

    @Test(arguments: [
        ExtensionRecord(number: "", authentication: .none),
        ExtensionRecord(number: "30 01", authentication: .none),
        ExtensionRecord(number: "3001", authentication: .digest, digestUsername: "3001", digestPassword: ""),
        ExtensionRecord(number: "3001", authentication: .digest, digestUsername: "a\"b", digestPassword: "p"),
        ExtensionRecord(number: "3001", authentication: .digest, digestUsername: "u", digestPassword: "p\r\nX: y"),
        ExtensionRecord(number: String(repeating: "1", count: 65), authentication: .none),
    ])
    func invalidRecordsAreRefused(_ record: ExtensionRecord) async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, logger: logger)
        defer { try? store.close() }
        await #expect(throws: StoreError.self) { try await store.addExtensions([record]) }
        #expect(try await store.extensions().isEmpty)
    }
}

@Suite("Store: sessions")
struct SessionStoreTests {
    let logger = Logger(label: "test.store")

    func store(_ directory: borrowing TemporaryDirectory, extensions: [String]) async throws -> Store {
        let store = try Store.open(directory: directory.path, logger: logger)
        try await store.addExtensions(extensions.map { ExtensionRecord(number: $0, authentication: .none) })
        return store
    }

    @Test func sessionsHoldExtensions() async throws {
        let directory = try TemporaryDirectory()
        let store = try await store(directory, extensions: ["3002", "3001", "3010"])
        defer { try? store.close() }
        let (first, token) = try await store.createSession(extension: nil, clientID: "app", lifetime: 60)
        #expect(first.extension == "3001", "the first free one in number order")
        #expect(token.count == 43 && !token.contains("=") && !token.contains("+"))
        #expect(try await store.session(token: token)?.id == first.id)
        #expect(try await store.session(token: token + "x") == nil)
        await #expect(throws: StoreError.extensionInUse("3001")) { try await store.createSession(extension: "3001", clientID: "app", lifetime: 60) }
        await #expect(throws: StoreError.unknownExtension("4000")) { try await store.createSession(extension: "4000", clientID: "app", lifetime: 60) }
        #expect(try await store.createSession(extension: nil, clientID: "app", lifetime: 60).0.extension == "3002")
        #expect(try await store.createSession(extension: nil, clientID: "app", lifetime: 60).0.extension == "3010")
        await #expect(throws: StoreError.noFreeExtension) { try await store.createSession(extension: nil, clientID: "app", lifetime: 60) }
        #expect(try await store.deleteSession(id: first.id))
        #expect(try await !store.deleteSession(id: first.id))
        #expect(try await store.createSession(extension: nil, clientID: "app", lifetime: 60).0.extension == "3001")
        // An expired session frees its extension and its token stops working.
        let later = Date().addingTimeInterval(120)
        #expect(try await store.sessions(now: later).isEmpty)
        #expect(try await store.session(token: token, now: later) == nil)
        #expect(try await store.createSession(extension: "3002", clientID: "app", lifetime: 60, now: later).0.extension == "3002")
    }

    /// Two requests for one extension at once: exactly one wins.
    @Test func concurrentRequestsForOneExtension() async throws {
        let directory = try TemporaryDirectory()
        let store = try await store(directory, extensions: ["3001"])
        defer { try? store.close() }
        for _ in 0..<20 {
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<8 { group.addTask { (try? await store.createSession(extension: "3001", clientID: "app", lifetime: 60)) != nil } }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            #expect(outcomes.filter { $0 }.count == 1)
            for session in try await store.sessions() { try await store.deleteSession(id: session.id) }
        }
    }

    @Test func guestSessionsCallTheirService() async throws {
        let directory = try TemporaryDirectory()
        let store = try await store(directory, extensions: ["3001"])
        defer { try? store.close() }
        try await store.putService(ServiceRecord(key: "support", number: "2000", displayName: "Support"))
        await #expect(throws: StoreError.self) { try await store.putService(ServiceRecord(key: "bad key", number: "2000")) }
        await #expect(throws: StoreError.self) { try await store.putService(ServiceRecord(key: "sales", number: "sip:x@y")) }
        await #expect(throws: StoreError.unknownService("sales")) {
            try await store.createGuestSession(from: "+4989123", service: "sales", clientID: "app", lifetime: 60)
        }
        let (guest, token) = try await store.createGuestSession(from: "+4989123", service: "support", clientID: "app", lifetime: 60)
        #expect(guest.extension == nil)
        let found = try #require(try await store.session(token: token))
        #expect(found.guest == .init(from: "+4989123", service: ServiceRecord(key: "support", number: "2000", displayName: "Support")))
        // A guest holds no extension: an agent session still gets 3001.
        #expect(try await store.createSession(extension: nil, clientID: "app", lifetime: 60).0.extension == "3001")
        // Replacing the service changes what its sessions call; removing it ends them.
        try await store.putService(ServiceRecord(key: "support", number: "2001"))
        #expect(try await store.session(token: token)?.guest?.service.number == "2001")
        #expect(try await store.removeService(key: "support"))
        #expect(try await store.session(token: token) == nil)
        #expect(try await store.services().isEmpty)
    }
}
