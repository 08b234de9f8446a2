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
        #expect(applied == ["v1-runtime-settings", "v2-extensions", "v3-token-signing-keys", "v4-sessions", "v5-services", "v6-admin", "v7-sip-platform", "v8-payload", "v9-payload-video", StoreMigrations.latestIdentifier])
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

    /// A token an application server signs with its client's WebRTC secret makes its
    /// session once, and is refused when forged, stale, too long, or after the switch is off.
    @Test func signedSessionTokensFollowTheWebRTCSecret() async throws {
        let directory = try TemporaryDirectory()
        let store = try Store.open(directory: directory.path, logger: logger)
        defer { try? store.close() }
        _ = try await store.createOAuthClient(id: "crm")
        try await store.addExtensions([ExtensionRecord(number: "3001", authentication: .none), ExtensionRecord(number: "3002", authentication: .none)])
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let expires = Int64(now.timeIntervalSince1970) + 600
        let unsigned = SignedSessionToken.sign(clientID: "crm", extension: "3001", expires: expires, secret: "not yet")
        await #expect(throws: SignedSessionToken.Problem.noWebRTCSecret) { _ = try await store.session(signedToken: unsigned, now: now) }
        #expect(try await store.oauthClient(id: "crm")?.webRTCSecretEnabled == false)
        let secret = try #require(try await store.setOAuthClientWebRTCSecret(id: "crm", enabled: true))
        let enabled = try await store.oauthClient(id: "crm")?.webRTCSecretEnabled
        #expect(secret.count == 64 && enabled == true)
        let token = SignedSessionToken.sign(clientID: "crm", extension: "3001", expires: expires, secret: secret)
        #expect(SignedSessionToken.looksSigned(token) && token.hasPrefix("w1:crm:3001:\(expires):"))
        let session = try await store.session(signedToken: token, now: now)
        #expect(session.extension == "3001" && session.clientID == "crm" && session.expiresAt.timeIntervalSince1970 == TimeInterval(expires))
        // The same token again is the same session; it is also that session's bearer token.
        #expect(try await store.session(signedToken: token, now: now.addingTimeInterval(10)).id == session.id)
        #expect(try await store.session(token: token, now: now)?.id == session.id)
        // Another token for the held extension, a forged one, a stale one, one too far ahead.
        let other = SignedSessionToken.sign(clientID: "crm", extension: "3001", expires: expires + 1, secret: secret)
        await #expect(throws: StoreError.extensionInUse("3001")) { _ = try await store.session(signedToken: other, now: now) }
        var forged = token
        forged.removeLast()
        forged.append(token.last == "A" ? "B" : "A")
        await #expect(throws: SignedSessionToken.Problem.self) { _ = try await store.session(signedToken: forged, now: now) }
        // The signature's last character carries two unused bits: set, they decode to the same
        // bytes, and such a second spelling of the token is refused as malformed.
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        let last = try #require(alphabet.firstIndex(of: token.last!))
        #expect(last % 4 == 0, "a canonical last character leaves its two low bits zero")
        let respelled = String(token.dropLast()) + String(alphabet[last + 1])
        await #expect(throws: SignedSessionToken.Problem.malformed) { _ = try await store.session(signedToken: respelled, now: now) }
        await #expect(throws: SignedSessionToken.Problem.badSignature) {
            _ = try await store.session(signedToken: token.replacingOccurrences(of: ":3001:", with: ":3002:"), now: now)
        }
        await #expect(throws: SignedSessionToken.Problem.expired) { _ = try await store.session(signedToken: token, now: now.addingTimeInterval(600)) }
        let long = SignedSessionToken.sign(clientID: "crm", extension: "3002", expires: expires + 86_400, secret: secret)
        await #expect(throws: SignedSessionToken.Problem.tooLong) { _ = try await store.session(signedToken: long, now: now) }
        let missing = SignedSessionToken.sign(clientID: "crm", extension: "4000", expires: expires, secret: secret)
        await #expect(throws: StoreError.unknownExtension("4000")) { _ = try await store.session(signedToken: missing, now: now) }
        let stranger = SignedSessionToken.sign(clientID: "nobody", extension: "3002", expires: expires, secret: secret)
        await #expect(throws: SignedSessionToken.Problem.unknownClient) { _ = try await store.session(signedToken: stranger, now: now) }
        // Off: even a well-signed token for a free extension is refused; on again: a new secret.
        let fresh = SignedSessionToken.sign(clientID: "crm", extension: "3002", expires: expires, secret: secret)
        #expect(try await store.setOAuthClientWebRTCSecret(id: "crm", enabled: false) == nil)
        await #expect(throws: SignedSessionToken.Problem.noWebRTCSecret) { _ = try await store.session(signedToken: fresh, now: now) }
        let renewed = try #require(try await store.setOAuthClientWebRTCSecret(id: "crm", enabled: true))
        #expect(renewed != secret)
        await #expect(throws: SignedSessionToken.Problem.badSignature) { _ = try await store.session(signedToken: fresh, now: now) }
        await #expect(throws: StoreError.unknownClient(id: "nobody")) { try await store.setOAuthClientWebRTCSecret(id: "nobody", enabled: true) }
    }

    /// Untrusted text: every malformed form is refused without a crash.
    @Test func malformedSignedTokensAreRefused() {
        let good = SignedSessionToken.sign(clientID: "c", extension: "+4930123", expires: 2_000_000_000, secret: "s")
        #expect((try? SignedSessionToken(parsing: good))?.extension == "+4930123")
        for bad in ["", "w1", "w1:c:3001:1:", "w2:c:3001:1:AAAA", "w1::3001:1:" + good.split(separator: ":").last!, "w1:c:30 01:1:x", "w1:c:3001:soon:x",
                    "w1:c:3001:1:!!!!", "w1:c:3001:1:" + String(repeating: "A", count: 600), good + ":extra", "w1:c:" + String(repeating: "1", count: 40) + ":1:x"] {
            #expect(throws: SignedSessionToken.Problem.malformed, "\(bad.prefix(40))") { try SignedSessionToken(parsing: bad) }
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
