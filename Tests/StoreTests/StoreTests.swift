import Foundation
import Logging
import Testing

@testable import Store

/// A fresh temporary directory, removed when the test ends.
struct TemporaryDirectory: ~Copyable {
    let path: String

    init() throws {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("tandem-store-\(UUID().uuidString)", isDirectory: true).path
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

private let logger = Logger(label: "test.store")

@Suite("Store")
struct StoreTests {
    @Test func firstOpenSeedsAndCreatesFiles() async throws {
        let directory = try TemporaryDirectory()
        let dataDirectory = directory.path + "/nested/data"
        let store = try Store.open(
            directory: dataDirectory,
            seed: StoreSeed(relayAddresses: ["192.0.2.10"], externalAddresses: ["192.0.2.10=203.0.113.5"], credentialTTL: 900),
            logger: logger)
        defer { try? store.close() }

        #expect(store.path == dataDirectory + "/tandem.sqlite")
        let attributes = try FileManager.default.attributesOfItem(atPath: store.path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)

        let settings = try await store.turnSettings()
        #expect(settings.sharedSecret.count == 64)
        let isHex = settings.sharedSecret.allSatisfy { $0.isHexDigit }
        #expect(isHex)
        #expect(settings.credentialTTL == 900)
        #expect(settings.relayAddresses == ["192.0.2.10"])
        #expect(settings.externalAddresses == ["192.0.2.10=203.0.113.5"])
        #expect(settings.previousSharedSecret == nil)

        let initial = try #require(store.initialCredentials)
        #expect(initial.clientID == "default-client-id")
        #expect(initial.clientSecret.count == 64)
        let client = try #require(try await store.oauthClient(id: "default-client-id"))
        #expect(client.tokenValidityMinutes == 20)
        #expect(try await store.verifyOAuthClient(id: "default-client-id", secret: initial.clientSecret) == client)
        #expect(try await store.verifyOAuthClient(id: "default-client-id", secret: "wrong") == nil)
        #expect(try await store.verifyOAuthClient(id: "nobody", secret: initial.clientSecret) == nil)
        #expect(await store.isHealthy())
        #expect(try await store.metaValue(forKey: "seeded-at") != nil)
    }

    @Test func seedingHappensOnceAndSurvivesReopen() async throws {
        let directory = try TemporaryDirectory()
        let first = try Store.open(directory: directory.path, logger: logger)
        let seeded = try await first.turnSettings()
        #expect(first.initialCredentials != nil)
        let updated = try await first.updateTURNSettings { settings in
            settings.credentialTTL = 1234
            settings.relayAddresses = ["198.51.100.7", "2001:db8::7"]
        }
        #expect(updated.credentialTTL == 1234)
        try await first.setMetaValue("value", forKey: "test-key")
        try first.close()

        // A different seed on reopen is ignored: the database is the source of truth.
        let second = try Store.open(
            directory: directory.path, seed: StoreSeed(relayAddresses: ["10.9.9.9"], credentialTTL: 60), logger: logger)
        defer { try? second.close() }
        #expect(second.initialCredentials == nil)
        let reopened = try await second.turnSettings()
        #expect(reopened.sharedSecret == seeded.sharedSecret)
        #expect(reopened.credentialTTL == 1234)
        #expect(reopened.relayAddresses == ["198.51.100.7", "2001:db8::7"])
        #expect(try await second.metaValue(forKey: "test-key") == "value")
        #expect(try await second.oauthClients().map(\.clientID) == ["default-client-id"])
    }

    @Test func migrationsAreIdempotent() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, logger: logger)
        let applied = try await store.appliedMigrations()
        #expect(applied == ["v1-runtime-settings", "v2-extensions", "v3-token-signing-keys", "v4-sessions", "v5-services", "v6-admin", "v7-sip-platform", StoreMigrations.latestIdentifier])
        // Running the migrator again on a migrated database changes nothing.
        try StoreMigrations.migrator.migrate(store.pool)
        try StoreMigrations.migrator.migrate(store.pool)
        #expect(try await store.appliedMigrations() == applied)
        try store.close()
        let reopened = try Store.open(directory: directory.path, logger: logger)
        defer { try? reopened.close() }
        #expect(try await reopened.appliedMigrations() == applied)
    }

    @Test func secretsDifferBetweenFreshStores() async throws {
        let a = try TemporaryDirectory()
        let b = try TemporaryDirectory()
        let storeA = try Store.open(directory: a.path, logger: logger)
        let storeB = try Store.open(directory: b.path, logger: logger)
        defer {
            try? storeA.close()
            try? storeB.close()
        }
        #expect(try await storeA.turnSettings().sharedSecret != storeB.turnSettings().sharedSecret)
        #expect(storeA.initialCredentials?.clientSecret != storeB.initialCredentials?.clientSecret)
    }

    @Test func rotationKeepsThePreviousSecretUntilItRetires() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, logger: logger)
        defer { try? store.close() }
        let before = try await store.turnSettings()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let rotated = try await store.rotateTURNSharedSecret(gracePeriod: 600, now: now)
        #expect(rotated.sharedSecret != before.sharedSecret)
        #expect(rotated.previousSharedSecret == before.sharedSecret)
        #expect(rotated.acceptedSecrets(at: now.addingTimeInterval(599)) == [rotated.sharedSecret, before.sharedSecret])
        #expect(rotated.acceptedSecrets(at: now.addingTimeInterval(600)) == [rotated.sharedSecret])
        #expect(try await store.turnSettings() == rotated)
    }

    @Test func invalidUpdatesAreRejectedAndRolledBack() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, logger: logger)
        defer { try? store.close() }
        let before = try await store.turnSettings()
        await #expect(throws: StoreError.self) {
            try await store.updateTURNSettings { $0.credentialTTL = 0 }
        }
        #expect(try await store.turnSettings() == before)
        await #expect(throws: StoreError.duplicateClient(id: "default-client-id")) {
            _ = try await store.createOAuthClient(id: "default-client-id")
        }
        await #expect(throws: StoreError.self) {
            _ = try await store.createOAuthClient(id: "bad:id")
        }
    }

    @Test func clientsCanBeCreatedAndTheirSecretsReset() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, logger: logger)
        defer { try? store.close() }
        let secret = try await store.createOAuthClient(id: "crm", tokenValidityMinutes: 5)
        #expect(try await store.verifyOAuthClient(id: "crm", secret: secret)?.tokenValidityMinutes == 5)
        let newSecret = try await store.resetOAuthClientSecret(id: "crm")
        #expect(newSecret != secret)
        #expect(try await store.verifyOAuthClient(id: "crm", secret: secret) == nil)
        #expect(try await store.verifyOAuthClient(id: "crm", secret: newSecret) != nil)
        await #expect(throws: StoreError.unknownClient(id: "nobody")) {
            _ = try await store.resetOAuthClientSecret(id: "nobody")
        }
    }

    @Test func closedStoreIsNotHealthy() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, logger: logger)
        #expect(await store.isHealthy())
        try store.close()
        #expect(await store.isHealthy() == false)
    }
}
