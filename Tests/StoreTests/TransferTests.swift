import Foundation
import Logging
import Testing

@testable import Store

@Suite("Export and import")
struct TransferTests {
    let logger = Logger(label: "test.store")

    func ext(_ n: String, _ password: String = "pw") -> ExtensionRecord {
        ExtensionRecord(number: n, authentication: .digest, digestUsername: n, digestPassword: password + n)
    }

    @Test func anExportMovesToAnotherServerAndReplacesWhatItHolds() async throws {
        let a = try TemporaryDirectory(), b = try TemporaryDirectory()
        let from = try Store.open(directory: a.path, logger: logger)
        defer { try? from.close() }
        try await from.addExtensions(["3000", "3001", "+4930100"].map { ext($0) })
        try await from.putService(ServiceRecord(key: "support", number: "2000", displayName: "Support"))
        try await from.updateTURNSettings { $0.credentialTTL = 900; $0.relayAddresses = ["192.0.2.1"] }
        let file = try await from.export(extensions: true, configuration: true).encoded()
        #expect(!String(decoding: file, as: UTF8.self).contains(try await from.turnSettings().sharedSecret), "no secrets in the configuration")

        let to = try Store.open(directory: b.path, logger: logger)
        defer { try? to.close() }
        try await to.addExtensions([ext("3001", "old"), ext("3999")])
        try await to.putService(ServiceRecord(key: "sales", number: "2100"))
        let (held, _) = try await to.createSession(extension: "3999", clientID: "app", lifetime: 600)
        let document = try TransferDocument.parse(file)
        let plan = try await to.importPlan(document)
        #expect(plan.extensions == .init(added: ["3000", "+4930100"], changed: ["3001"], removed: ["3999"]))
        #expect(plan.services == .init(added: ["support"], changed: [], removed: ["sales"]))
        #expect(plan.turn?.count == 2, "TTL and relay addresses differ")

        let result = try await to.apply(document, expecting: plan.basis)
        #expect(result.plan == plan)
        #expect(result.endedSessions == [held.id], "the session of the removed extension ended with it")
        #expect(try await to.extensions() == (try await from.extensions()))
        #expect(try await to.services() == [ServiceRecord(key: "support", number: "2000", displayName: "Support")])
        #expect(try await to.turnSettings().credentialTTL == 900)
        #expect(try await to.importPlan(document).isEmpty, "a second import changes nothing")
    }

    @Test func theSIPPlatformAndPayloadTravelWithTheConfiguration() async throws {
        let a = try TemporaryDirectory(), b = try TemporaryDirectory()
        let from = try Store.open(directory: a.path, logger: logger)
        defer { try? from.close() }
        try await from.saveSIPPlatformSettings(SIPPlatformSettings(primary: "pbx.example:5070", transport: "tcp", domain: "example.com", registrationExpires: 900))
        try await from.savePayloadSettings(PayloadSettings(srtpMode: "required", audioCodecs: ["opus", "pcma"], videoCodecs: ["h264", "vp8"]))
        try await from.saveDiagnosticsSettings(DiagnosticsSettings(defaultLevel: "debug", levels: ["SIPUA": "trace"], maxFiles: 7, maxFileSize: 1 << 20))
        let file = try await from.export(extensions: false, configuration: true).encoded()
        let to = try Store.open(directory: b.path, logger: logger)
        defer { try? to.close() }
        let document = try TransferDocument.parse(file)
        let plan = try await to.importPlan(document)
        #expect(plan.settings?.contains("sipPlatform.primary – → pbx.example:5070") == true)
        #expect(plan.settings?.contains("payload.srtpMode – → required") == true)
        try await to.apply(document, expecting: plan.basis)
        let sip = try #require(try await to.sipPlatformSettings())
        #expect(sip.samePlatform(as: try await from.sipPlatformSettings()))
        #expect(try await to.payloadSettings()?.audioCodecs == ["opus", "pcma"])
        #expect(try await to.payloadSettings()?.videoCodecs == ["h264", "vp8"])
        #expect(try await to.diagnosticsSettings() == DiagnosticsSettings(defaultLevel: "debug", levels: ["SIPUA": "trace"], maxFiles: 7, maxFileSize: 1 << 20))
        #expect(plan.settings?.contains("diagnostics.levels – → SIPUA=trace") == true)
        #expect(try await to.importPlan(document).isEmpty)
        // A file without them leaves them alone; one with a bad value is refused whole.
        let older = TransferDocument(extensions: nil, configuration: .init(services: [], turn: .init(credentialTTL: 600, relayAddresses: [], externalAddresses: [])))
        try await to.apply(older)
        #expect(try await to.payloadSettings()?.srtpMode == "required")
        var bad = document
        bad.configuration?.sipPlatform?.registrationExpires = 60
        #expect(throws: TransferDocument.Problem.self) { try TransferDocument.parse(bad.encoded()) }
        var noisy = document
        noisy.configuration?.diagnostics?.maxFiles = 1000
        #expect(throws: TransferDocument.Problem.self) { try TransferDocument.parse(noisy.encoded()) }
    }

    @Test func aPlanGoesStaleWhenTheDataChanges() async throws {
        let a = try TemporaryDirectory()
        let store = try Store.open(directory: a.path, logger: logger)
        defer { try? store.close() }
        let document = TransferDocument(extensions: [ext("3000")], configuration: nil)
        let plan = try await store.importPlan(document)
        try await store.addExtensions([ext("3100")])
        await #expect(throws: StoreError.changedSincePlan) { try await store.apply(document, expecting: plan.basis) }
        #expect(try await store.extensions().map(\.number) == ["3100"], "nothing was applied")
    }

    @Test func filesAreCheckedWholeBeforeAnything() throws {
        func parse(_ json: String) throws(TransferDocument.Problem) -> TransferDocument { try TransferDocument.parse(Array(json.utf8)) }
        #expect(throws: TransferDocument.Problem.notJSON("not JSON")) { try parse("{") }
        #expect(throws: TransferDocument.Problem.notJSON("version is missing")) { try parse(#"{"format":"tandem-export"}"#) }
        #expect(throws: TransferDocument.Problem.wrongFormat("other")) { try parse(#"{"format":"other","version":1}"#) }
        #expect(throws: TransferDocument.Problem.unsupportedVersion(2)) { try parse(#"{"format":"tandem-export","version":2,"extensions":[]}"#) }
        #expect(throws: TransferDocument.Problem.empty) { try parse(#"{"format":"tandem-export","version":1}"#) }
        #expect(throws: TransferDocument.Problem.notJSON("extensions has the wrong type")) { try parse(#"{"format":"tandem-export","version":1,"extensions":null}"#) }
        #expect(throws: TransferDocument.Problem.invalid("extension 3000 appears twice")) {
            try parse(#"{"format":"tandem-export","version":1,"extensions":[{"extension":"3000","authentication":"none"},{"extension":"3000","authentication":"none"}]}"#)
        }
        #expect(throws: TransferDocument.Problem.invalid("extension 1: authentication must be digest or none")) {
            try parse(#"{"format":"tandem-export","version":1,"extensions":[{"extension":"1","authentication":"basic"}]}"#)
        }
        #expect(throws: TransferDocument.Problem.invalid("turn.credentialTTL must be 60–86400 seconds")) {
            try parse(#"{"format":"tandem-export","version":1,"configuration":{"services":[],"turn":{"credentialTTL":5,"relayAddresses":[],"externalAddresses":[]}}}"#)
        }
        #expect(throws: TransferDocument.Problem.tooLarge(limit: TransferDocument.maximumSize)) {
            try TransferDocument.parse([UInt8](repeating: 0x20, count: TransferDocument.maximumSize + 1))
        }
        let ok = try parse(#"{"format":"tandem-export","version":1,"extensions":[{"extension":"+4930100","authentication":"digest","digestUsername":"u","digestPassword":"p","realm":null}]}"#)
        #expect(try ok.records() == [ExtensionRecord(number: "+4930100", authentication: .digest, digestUsername: "u", digestPassword: "p")])
    }
}
