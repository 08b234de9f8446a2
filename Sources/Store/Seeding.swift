import Foundation
import GRDB

/// The first-start seed: runs in the same transaction as its `meta` marker, so it
/// happens exactly once per database, even with two processes starting together.
enum Seeding {
    static func seedIfNeeded(_ db: Database, seed: StoreSeed, now: Date = Date()) throws -> InitialCredentials? {
        guard try Meta.value(db, key: Meta.seededAtKey) == nil else { return nil }
        try TURNSettingsTable.validate(credentialTTL: seed.credentialTTL)
        try OAuthClientsTable.validate(clientID: seed.defaultClientID, tokenValidityMinutes: seed.tokenValidityMinutes)

        if try TURNSettingsTable.fetch(db) == nil {
            let settings = TURNSettings(
                sharedSecret: seed.turnSharedSecret ?? Secrets.randomHex(byteCount: 32),
                previousSharedSecret: nil,
                previousSecretRetiresAt: nil,
                credentialTTL: seed.credentialTTL,
                relayAddresses: seed.relayAddresses,
                externalAddresses: seed.externalAddresses,
                updatedAt: now)
            try TURNSettingsTable.save(db, settings)
        }
        var initial: InitialCredentials?
        if try OAuthClientsTable.fetch(db, id: seed.defaultClientID) == nil {
            let secret = try OAuthClientsTable.insert(
                db, id: seed.defaultClientID, tokenValidityMinutes: seed.tokenValidityMinutes, now: now)
            initial = InitialCredentials(clientID: seed.defaultClientID, clientSecret: secret)
        }
        try Meta.setValue(db, key: Meta.seededAtKey, value: ISO8601DateFormatter().string(from: now))
        return initial
    }
}

/// Random secrets from the system's CSPRNG.
enum Secrets {
    static func randomBytes(count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    static func randomHex(byteCount: Int) -> String {
        hex(randomBytes(count: byteCount))
    }

    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
