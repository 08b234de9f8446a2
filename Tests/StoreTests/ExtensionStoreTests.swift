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
