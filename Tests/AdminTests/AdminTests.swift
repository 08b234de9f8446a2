import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Store
import Synchronization
import Testing

@testable import Admin

@Suite("Admin password hashes (scrypt, PHC strings)")
struct PasswordHashTests {
    @Test func aHashVerifiesItsPasswordAndNoOther() throws {
        let hash = try PasswordHash.make("correct horse battery", cost: .minimal)
        #expect(hash.verify("correct horse battery"))
        #expect(!hash.verify("correct horse batterz"))
        #expect(!hash.verify(""))
        let other = try PasswordHash.make("correct horse battery", cost: .minimal)
        #expect(other.salt != hash.salt && other.hash != hash.hash, "a fresh salt per hash")
    }

    @Test func thePHCStringRoundTrips() throws {
        let hash = try PasswordHash.make("pässwörd with ünïcode", cost: .minimal)
        let text = hash.description
        #expect(text.hasPrefix("$scrypt$ln=10,r=8,p=1$"))
        let parsed = try PasswordHash(parsing: text)
        #expect(parsed == hash)
        #expect(parsed.verify("pässwörd with ünïcode"))
    }

    @Test func theRFC7914VectorIsReproduced() throws {
        // RFC 7914 §12, the second vector: P="password", S="NaCl", N=1024, r=8, p=16, dkLen=64
        // (our hashes are 32 bytes long: the first 32 of the vector's 64).
        let derived = try PasswordHash.derive("password", salt: Array("NaCl".utf8), cost: .init(logN: 10, blockSize: 8, parallelism: 16))
        let expected = "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        #expect(derived.map { String(format: "%02x", $0) }.joined() == expected)
    }

    @Test func storedHashesOutsideTheBoundsAreRefused() {
        #expect(throws: PasswordHash.ParseError.notScrypt) { try PasswordHash(parsing: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA") }
        #expect(throws: PasswordHash.ParseError.notScrypt) { try PasswordHash(parsing: "") }
        #expect(throws: PasswordHash.ParseError.invalidParameters("ln=30,r=8,p=1")) { try PasswordHash(parsing: "$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0$" + String(repeating: "A", count: 43)) }
        #expect(throws: PasswordHash.ParseError.invalidParameters("ln=10,r=8")) { try PasswordHash(parsing: "$scrypt$ln=10,r=8$c2FsdHNhbHRzYWx0$" + String(repeating: "A", count: 43)) }
        #expect(throws: PasswordHash.ParseError.invalidEncoding) { try PasswordHash(parsing: "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0$c2hvcnQ") }
        #expect(throws: PasswordHash.ParseError.notScrypt) { try PasswordHash(parsing: "$scrypt$" + String(repeating: "x", count: 300)) }
    }

    @Test func anOverlongPasswordNeverMatches() throws {
        let long = String(repeating: "a", count: PasswordHash.maximumPasswordLength + 1)
        let hash = try PasswordHash.make(long, cost: .minimal)
        #expect(!hash.verify(long))
    }
}

@Suite("Sign-in lock-out")
struct SignInThrottleTests {
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    @Test func theDelayDoublesAfterTheFreeFailures() {
        let throttle = SignInThrottle(freeFailures: 3, maximumDelay: 10)
        var delays: [TimeInterval] = []
        for i in 0..<8 { delays.append(throttle.recordFailure(account: "admin", source: "10.0.0.1", now: t0.addingTimeInterval(Double(i) * 100))) }
        #expect(delays == [0, 0, 0, 1, 2, 4, 8, 10])
        #expect(throttle.retryAfter(account: "admin", source: "10.0.0.1", now: t0.addingTimeInterval(700)) == 10)
        #expect(throttle.retryAfter(account: "admin", source: "10.0.0.1", now: t0.addingTimeInterval(711)) == nil)
    }

    @Test func bothTheAccountAndTheSourceAreLocked() {
        let throttle = SignInThrottle(freeFailures: 1)
        throttle.recordFailure(account: "alice", source: "10.0.0.1", now: t0)
        throttle.recordFailure(account: "alice", source: "10.0.0.1", now: t0)
        // The same account from elsewhere, and another account from the same source, wait too.
        #expect(throttle.retryAfter(account: "ALICE", source: "10.9.9.9", now: t0) != nil)
        #expect(throttle.retryAfter(account: "bob", source: "10.0.0.1", now: t0) != nil)
        #expect(throttle.retryAfter(account: "bob", source: "10.9.9.9", now: t0) == nil)
    }

    @Test func successClearsAndOldFailuresAreForgotten() {
        let throttle = SignInThrottle(freeFailures: 1, forgetAfter: 60)
        throttle.recordFailure(account: "a", source: "s", now: t0)
        throttle.recordSuccess(account: "a", source: "s")
        #expect(throttle.failures("account:a") == 0)
        throttle.recordFailure(account: "a", source: "s", now: t0)
        #expect(throttle.recordFailure(account: "a", source: "s", now: t0.addingTimeInterval(120)) == 0, "a failure an hour later starts again from the first")
    }

    @Test func theTableStaysBounded() {
        let throttle = SignInThrottle(capacity: 100)
        for i in 0..<1000 { throttle.recordFailure(account: "user\(i)", source: "10.0.\(i / 256).\(i % 256)", now: t0.addingTimeInterval(Double(i))) }
        #expect(throttle.failures("account:user999") == 1)
        #expect(throttle.failures("account:user0") == 0)
    }
}

@Suite("Forms and cookies")
struct FormTests {
    @Test func urlencodedFieldsDecode() throws {
        let form = try FormBody(parsing: Array("account=admin&password=a+b%21%C3%A9&csrf=x&flag&account=second".utf8))
        #expect(form["account"] == "admin")
        #expect(form["password"] == "a b!é")
        #expect(form["flag"] == "")
        #expect(form.values("account") == ["admin", "second"])
        #expect(form["missing"] == nil)
    }

    @Test func malformedFormsAreTypedErrors() {
        #expect(throws: FormBody.ParseError.invalidEncoding) { try FormBody(parsing: Array("a=%zz".utf8)) }
        #expect(throws: FormBody.ParseError.invalidEncoding) { try FormBody(parsing: Array("a=%4".utf8)) }
        #expect(throws: FormBody.ParseError.invalidEncoding) { try FormBody(parsing: Array("a=%FF%FE".utf8)) }
        #expect(throws: FormBody.ParseError.tooLarge(limit: 10)) { try FormBody(parsing: Array(repeating: UInt8(ascii: "a"), count: 11), maximumSize: 10) }
        #expect(throws: FormBody.ParseError.tooManyFields(limit: FormBody.maximumFields)) {
            try FormBody(parsing: Array(String(repeating: "a=1&", count: FormBody.maximumFields + 1).utf8))
        }
    }

    @Test func cookiesAreFoundAndSetStrictly() {
        #expect(Cookies.value("tandem_cms", in: "a=1; tandem_cms=tok; b=2") == "tok")
        #expect(Cookies.value("tandem_cms", in: "tandem_cmsx=1") == nil)
        #expect(Cookies.value("x", in: String(repeating: "x=1;", count: 3000)) == nil)
        let set = Cookies.setCookie("tandem_cms", "tok", maxAge: nil, secure: true)
        #expect(set == "tandem_cms=tok; Path=/cms; HttpOnly; SameSite=Strict; Secure")
    }
}

/// A context with the client's address, as the HTTPS router's.
struct TestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

@Suite("The /cms pages over HTTP")
struct AdminHTTPTests {
    static func withStore<T>(_ body: (Store) async throws -> T) async throws -> T {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tandem-admin-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try Store.open(directory: dir, logger: Logger(label: "test"))
        defer { try? store.close() }
        return try await body(store)
    }

    static func app(_ store: Store, allowed: Bool = true, throttle: SignInThrottle = SignInThrottle(), backend: AdminBackend? = nil) -> some ApplicationProtocol {
        let router = Router(context: TestContext.self)
        let configuration = AdminConfiguration(isAllowedSource: { ip in allowed && ip == "127.0.0.1" }, secureCookies: true, passwordCost: .minimal)
        AdminRoutes<TestContext>(store: store, configuration: configuration, backend: backend, history: DashboardHistory(), throttle: throttle, logger: Logger(label: "test"))
            .add(to: router)
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    static func csrf(_ body: ByteBuffer) -> String? {
        let page = String(buffer: body)
        guard let r = page.range(of: #"name="csrf" value="([^"]+)""#, options: .regularExpression) else { return nil }
        return String(page[r].dropFirst(#"name="csrf" value=""#.count).dropLast())
    }

    static func cookie(_ name: String, _ response: TestResponse) -> String? {
        for value in response.headers[values: .setCookie] where value.hasPrefix(name + "=") {
            return String(value.dropFirst(name.count + 1).prefix { $0 != ";" })
        }
        return nil
    }

    /// Loads the sign-in page and posts the form; returns the response.
    static func signIn(_ client: some TestClientProtocol, account: String, password: String, origin: String? = nil) async throws -> TestResponse {
        let page = try await client.execute(uri: "/cms/login", method: .get)
        let token = try #require(csrf(page.body))
        let cookie = try #require(Self.cookie("tandem_cms_signin", page))
        var headers: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "tandem_cms_signin=\(cookie)"]
        if let origin { headers[.origin] = origin }
        let body = "csrf=\(FormBody.encode(token))&account=\(FormBody.encode(account))&password=\(FormBody.encode(password))"
        return try await client.execute(uri: "/cms/login", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    @Test func withoutAnAccountOnlyTheSetUpInstructionsShow() async throws {
        try await Self.withStore { store in
            try await Self.app(store).test(.live) { client in
                for uri in ["/cms", "/cms/", "/cms/login", "/cms/audit"] {
                    let r = try await client.execute(uri: uri, method: .get)
                    #expect(r.status == .ok, "\(uri)")
                    let page = String(buffer: r.body)
                    #expect(page.contains("tandem admin create NAME"), "\(uri)")
                    #expect(!page.contains("<form"), "no form of any kind before an account exists: \(uri)")
                }
            }
        }
    }

    @Test func otherNetworksGet404() async throws {
        try await Self.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            try await Self.app(store, allowed: false).test(.live) { client in
                for (uri, method) in [("/cms", HTTPRequest.Method.get), ("/cms/login", .get), ("/cms/login", .post), ("/cms/static/cms.css", .get)] {
                    let r = try await client.execute(uri: uri, method: method)
                    #expect(r.status == .notFound, "\(method) \(uri)")
                    #expect(r.body.readableBytes == 0)
                }
            }
        }
    }

    @Test func signInSessionAndSignOut() async throws {
        try await Self.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            try await Self.app(store).test(.live) { client in
                let entry = try await client.execute(uri: "/cms", method: .get)
                #expect(entry.status == .seeOther)
                #expect(entry.headers[.location] == "/cms/login")

                let page = try await client.execute(uri: "/cms/login", method: .get)
                #expect(page.status == .ok)
                let csp = try #require(page.headers[.contentSecurityPolicy])
                #expect(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline") && csp.contains("frame-ancestors 'none'"))
                #expect(page.headers[.init("X-Frame-Options")!] == "DENY")
                #expect(page.headers[.accessControlAllowOrigin] == nil)
                let signInCookie = try #require(page.headers[values: .setCookie].first { $0.hasPrefix("tandem_cms_signin=") })
                #expect(signInCookie.contains("HttpOnly") && signInCookie.contains("SameSite=Strict") && signInCookie.contains("Secure"))

                let wrong = try await Self.signIn(client, account: "admin", password: "not the password")
                #expect(wrong.status == .unauthorized)
                #expect(String(buffer: wrong.body).contains("Wrong account name or password."))
                #expect(Self.cookie("tandem_cms", wrong) == nil)

                let right = try await Self.signIn(client, account: "admin", password: "a long password")
                #expect(right.status == .seeOther)
                #expect(right.headers[.location] == "/cms/")
                let session = try #require(Self.cookie("tandem_cms", right))
                let set = try #require(right.headers[values: .setCookie].first { $0.hasPrefix("tandem_cms=") })
                #expect(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Secure") && set.contains("Path=/cms"))

                let dashboard = try await client.execute(uri: "/cms/", method: .get, headers: [.cookie: "tandem_cms=\(session)"])
                #expect(dashboard.status == .ok)
                let html = String(buffer: dashboard.body)
                #expect(html.contains("<h1>Dashboard</h1>") && html.contains(">admin</span>"))
                let token = try #require(Self.csrf(dashboard.body))

                // Sign-out needs the session's CSRF token and this site's origin.
                let form: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .cookie: "tandem_cms=\(session)"]
                let forged = try await client.execute(uri: "/cms/logout", method: .post, headers: form, body: ByteBuffer(string: "csrf=forged"))
                #expect(forged.status == .forbidden)
                var crossSite = form
                crossSite[.origin] = "https://evil.example"
                let cross = try await client.execute(uri: "/cms/logout", method: .post, headers: crossSite, body: ByteBuffer(string: "csrf=\(token)"))
                #expect(cross.status == .forbidden)
                let out = try await client.execute(uri: "/cms/logout", method: .post, headers: form, body: ByteBuffer(string: "csrf=\(token)"))
                #expect(out.status == .seeOther)
                #expect(out.headers[.location] == "/cms/login")
                let after = try await client.execute(uri: "/cms/", method: .get, headers: [.cookie: "tandem_cms=\(session)"])
                #expect(after.status == .seeOther, "the session ended with the sign-out")

                let audit = try await store.auditLog(limit: 10).map(\.action)
                #expect(audit == ["sign-out", "sign-in", "sign-in failed"])
            }
        }
    }

    @Test func aSignInWithoutTheFormsTokenIsRefused() async throws {
        try await Self.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            try await Self.app(store).test(.live) { client in
                let r = try await client.execute(uri: "/cms/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                 body: ByteBuffer(string: "account=admin&password=a+long+password"))
                #expect(r.status == .forbidden)
                #expect(Self.cookie("tandem_cms", r) == nil)
                let big = try await client.execute(uri: "/cms/login", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                   body: ByteBuffer(string: String(repeating: "a", count: 100_000)))
                #expect(big.status == .badRequest)
            }
        }
    }

    @Test func repeatedFailuresLockTheAccountOut() async throws {
        try await Self.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            try await Self.app(store, throttle: SignInThrottle(freeFailures: 3, maximumDelay: 60)).test(.live) { client in
                for _ in 0..<4 {
                    #expect(try await Self.signIn(client, account: "admin", password: "guess").status == .unauthorized)
                }
                // Locked now: even the right password is not looked at.
                let locked = try await Self.signIn(client, account: "admin", password: "a long password")
                #expect(locked.status == .tooManyRequests)
                #expect(locked.headers[.retryAfter] == "1")
                #expect(Self.cookie("tandem_cms", locked) == nil)
                try await Task.sleep(for: .milliseconds(1100))
                #expect(try await Self.signIn(client, account: "admin", password: "a long password").status == .seeOther)
                #expect(try await store.auditLog(limit: 10).map(\.action).contains("sign-in refused"))
            }
        }
    }

    @Test func theDashboardShowsTheBackendsFigures() async throws {
        try await Self.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            let backend = AdminBackend(snapshot: {
                DashboardSnapshot(extensionsByState: ["registered": 3, "in call": 1, "failed": 1],
                                  calls: [.init(id: "c1", direction: "inbound", extension: "3001", remote: "sip:<b>@pbx", state: "confirmed", codec: "PCMU",
                                                mode: "transcode", jitterMs: 2.5, lossPercent: 0.1, rttMs: 40, mos: 4.31)],
                                  turnAllocations: 7, turnRelayedBytes: 3 << 20, cpuSeconds: 12, residentBytes: 50 << 20, uptimeSeconds: 7200)
            })
            try await Self.app(store, backend: backend).test(.live) { client in
                let signIn = try await Self.signIn(client, account: "admin", password: "a long password")
                let session = try #require(Self.cookie("tandem_cms", signIn))
                let page = String(buffer: try await client.execute(uri: "/cms/", method: .get, headers: [.cookie: "tandem_cms=\(session)"]).body)
                #expect(page.contains("4 / 5"), "registered and in call count as registered")
                #expect(page.contains("1 transcoded · 0 pass-through"))
                #expect(page.contains(">7<"))
                #expect(page.contains("sip:&lt;b&gt;@pbx"), "remote text is escaped")
                #expect(page.contains("4.31"))
                #expect(page.contains("<svg class=\"chart\""))
                #expect(page.contains("http-equiv=\"refresh\""))
            }
        }
    }
}

@Suite("The extensions pages")
struct ExtensionPagesTests {
    @Test func runsAreRecoveredFromTheNumbers() {
        let numbers = ["3000", "3001", "3002", "3010", "+4930100", "+4930101", "0099", "0100", "alice"]
        #expect(ExtensionRun.runs(numbers) == [
            .init(first: "3000", last: "3002", count: 3), .init(first: "3010", last: "3010", count: 1),
            .init(first: "+4930100", last: "+4930101", count: 2), .init(first: "0099", last: "0100", count: 2),
        ])
        let run = ExtensionRun(first: "3000", last: "3099", count: 100)
        #expect(run.spans("3042") && !run.spans("3100") && !run.spans("+3042") && !run.spans("03042"))
    }

    /// Signs in and returns the session cookie and its CSRF token.
    static func session(_ client: some TestClientProtocol) async throws -> (cookie: String, csrf: String) {
        let signIn = try await AdminHTTPTests.signIn(client, account: "admin", password: "a long password")
        let cookie = "tandem_cms=" + (try #require(AdminHTTPTests.cookie("tandem_cms", signIn)))
        let page = try await client.execute(uri: "/cms/extensions", method: .get, headers: [.cookie: cookie])
        return (cookie, try #require(AdminHTTPTests.csrf(page.body)))
    }

    static func post(_ client: some TestClientProtocol, _ uri: String, _ s: (cookie: String, csrf: String), _ fields: String) async throws -> TestResponse {
        try await client.execute(uri: uri, method: .post, headers: [.contentType: "application/x-www-form-urlencoded", .cookie: s.cookie],
                                 body: ByteBuffer(string: "csrf=\(FormBody.encode(s.csrf))&" + fields))
    }

    @Test func anE164RangeIsAddedSearchedAndRemoved() async throws {
        try await AdminHTTPTests.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            let ended = Mutex<[String]>([])
            let backend = AdminBackend(snapshot: { DashboardSnapshot() }, extensionStates: { ["+4930100": "registered"] },
                                       endSession: { id in ended.withLock { $0.append(id) } })
            try await AdminHTTPTests.app(store, backend: backend).test(.live) { client in
                let s = try await Self.session(client)
                let forged = try await client.execute(uri: "/cms/extensions/add", method: .post, headers: [.contentType: "application/x-www-form-urlencoded", .cookie: s.cookie],
                                                      body: ByteBuffer(string: "from=1&to=2"))
                #expect(forged.status == .forbidden)
                #expect(try await store.extensions().isEmpty)

                let added = try await Self.post(client, "/cms/extensions/add", s,
                                                "from=%2B4930100&to=%2B4930119&digest=on&username=u100&username-increment=on&password=pw100&password-increment=on&realm=pbx")
                #expect(added.status == .seeOther)
                let all = try await store.extensions()
                #expect(all.count == 20)
                #expect(all.last == ExtensionRecord(number: "+4930119", authentication: .digest, digestUsername: "u119", digestPassword: "pw119", realm: "pbx"))

                let duplicate = try await Self.post(client, "/cms/extensions/add", s, "from=%2B4930119&to=%2B4930120")
                #expect(duplicate.status == .badRequest)
                #expect(String(buffer: duplicate.body).contains("Nothing was added: extensions exist already: +4930119"))
                #expect(try await store.extensions().count == 20, "all or nothing")

                let search = String(buffer: try await client.execute(uri: "/cms/extensions?q=%2B4930100", method: .get, headers: [.cookie: s.cookie]).body)
                #expect(search.contains("+4930100 is an extension (registered), in the range +4930100–+4930119 of 20."))

                let (session, _) = try await store.createSession(extension: "+4930105", clientID: "app", lifetime: 600)
                #expect(try await Self.post(client, "/cms/extensions/remove", s, "number=%2B4930105").status == .seeOther)
                #expect(ended.withLock { $0 } == [session.id], "the session holding the removed extension was ended")
                #expect(try await store.sessions().isEmpty)

                let stale = try await Self.post(client, "/cms/extensions/remove-all", s, "confirm=on&count=20")
                #expect(stale.status == .conflict, "the page showed 20; 19 are left")
                #expect(try await store.extensions().count == 19)
                #expect(try await Self.post(client, "/cms/extensions/remove-all", s, "confirm=on&count=19").status == .seeOther)
                #expect(try await store.extensions().isEmpty)
                let actions = try await store.auditLog(limit: 10).map(\.action)
                #expect(Array(actions.prefix(3)) == ["all extensions removed", "extension removed", "extensions added"])
            }
        }
    }
}

@Suite("The TURN and client pages")
struct TURNAndClientPagesTests {
    @Test func turnSettingsAreValidatedAppliedAndAudited() async throws {
        try await AdminHTTPTests.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            let applied = Mutex<[TURNSettings]>([])
            let turn = TURNBackend(status: { TURNStatus(enabled: true, realm: "tandem", listeners: ["udp 127.0.0.1:3478"], allocations: 2) },
                                   validateAddresses: { relay, _ in relay.first { $0 == "nonsense" }.map { "'\($0)' is not an IP address" } },
                                   apply: { s in applied.withLock { $0.append(s) } })
            try await AdminHTTPTests.app(store, backend: AdminBackend(snapshot: { DashboardSnapshot() }, turn: turn)).test(.live) { client in
                let s = try await ExtensionPagesTests.session(client)
                let page = String(buffer: try await client.execute(uri: "/cms/turn", method: .get, headers: [.cookie: s.cookie]).body)
                #expect(page.contains("udp 127.0.0.1:3478"))
                let secret = try await store.turnSettings().sharedSecret
                #expect(page.contains(secret), "inside the closed <details>")

                let short = try await ExtensionPagesTests.post(client, "/cms/turn/settings", s, "ttl=5&relay=10.0.0.1")
                #expect(short.status == .badRequest)
                let bad = try await ExtensionPagesTests.post(client, "/cms/turn/settings", s, "ttl=600&relay=nonsense")
                #expect(bad.status == .badRequest)
                #expect(String(buffer: bad.body).contains("Not saved: &#39;nonsense&#39; is not an IP address."))
                #expect(applied.withLock { $0.isEmpty })
                let ok = try await ExtensionPagesTests.post(client, "/cms/turn/settings", s, "ttl=900&relay=10.0.0.1%0D%0A%3A%3A1&external=10.0.0.1%3D198.51.100.1")
                #expect(ok.status == .seeOther)
                let stored = try await store.turnSettings()
                #expect(stored.credentialTTL == 900 && stored.relayAddresses == ["10.0.0.1", "::1"] && stored.externalAddresses == ["10.0.0.1=198.51.100.1"])

                let weak = try await ExtensionPagesTests.post(client, "/cms/turn/rotate", s, "secret=short")
                #expect(weak.status == .badRequest)
                #expect(try await ExtensionPagesTests.post(client, "/cms/turn/rotate", s, "secret=a-secret-typed-by-hand-42").status == .seeOther)
                let rotated = try await store.turnSettings()
                #expect(rotated.sharedSecret == "a-secret-typed-by-hand-42" && rotated.previousSharedSecret == secret)
                let retires = try #require(rotated.previousSecretRetiresAt)
                #expect(abs(retires.timeIntervalSinceNow - 900) < 30, "the previous secret is valid for one TTL")
                #expect(applied.withLock { $0.map(\.sharedSecret) } == [secret, "a-secret-typed-by-hand-42"])
                #expect(try await store.auditLog(limit: 2).map(\.action) == ["TURN secret changed", "TURN settings saved"])
            }
        }
    }

    @Test func theSIPPlatformIsValidatedNextToItsFieldAppliedAndReset() async throws {
        try await AdminHTTPTests.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            let applied = Mutex<[SIPPlatformSettings?]>([])
            let file = SIPPlatformSettings(primary: "127.0.0.1:5060", registrationExpires: 600, keepAliveInterval: 30)
            let sip = SIPBackend(
                status: { SIPStatus(running: true, listeners: ["udp 127.0.0.1:5062"], primary: "udp:127.0.0.1:5060", primaryReachable: true, registered: 3) },
                configured: { file },
                validate: { $0.primary.hasPrefix("nowhere") ? ("primary", "the primary nowhere.invalid does not resolve") : nil },
                apply: { s in applied.withLock { $0.append(s) } })
            try await AdminHTTPTests.app(store, backend: AdminBackend(snapshot: { DashboardSnapshot() }, sip: sip)).test(.live) { client in
                let s = try await ExtensionPagesTests.session(client)
                let page = String(buffer: try await client.execute(uri: "/cms/sip", method: .get, headers: [.cookie: s.cookie]).body)
                #expect(page.contains("value=\"127.0.0.1:5060\"") && page.contains("From the configuration file"))
                #expect(page.contains("udp 127.0.0.1:5062") && !page.contains("reset-sip"))

                let short = try await ExtensionPagesTests.post(client, "/cms/sip", s, "primary=10.0.0.1&transport=udp&expires=120&keepalive=30")
                #expect(short.status == .badRequest)
                let shortPage = String(buffer: short.body)
                #expect(shortPage.contains("id=\"expires-error\"") && shortPage.contains("300 to 86400 seconds"), "the error stands next to its field")
                #expect(shortPage.contains("value=\"10.0.0.1\""), "what was typed is kept")
                let unresolved = try await ExtensionPagesTests.post(client, "/cms/sip", s, "primary=nowhere.invalid&transport=tcp&expires=600&keepalive=30")
                #expect(unresolved.status == .badRequest)
                #expect(String(buffer: unresolved.body).contains("id=\"primary-error\""))
                let transport = try await ExtensionPagesTests.post(client, "/cms/sip", s, "primary=10.0.0.1&transport=sctp&expires=600&keepalive=30")
                #expect(transport.status == .badRequest)
                let untouched = try await store.sipPlatformSettings()
                #expect(applied.withLock { $0.isEmpty } && untouched == nil, "nothing half-applied")

                let ok = try await ExtensionPagesTests.post(client, "/cms/sip", s, "primary=10.0.0.1%3A5070&secondary=10.0.0.2&transport=TCP&proxy=&domain=pbx.example&expires=900&keepalive=0")
                #expect(ok.status == .seeOther)
                let stored = try #require(try await store.sipPlatformSettings())
                #expect(stored.primary == "10.0.0.1:5070" && stored.secondary == "10.0.0.2" && stored.transport == "tcp" && stored.domain == "pbx.example")
                #expect(stored.registrationExpires == 900 && stored.keepAliveInterval == 0)
                #expect(applied.withLock { $0.map { $0?.primary } } == [stored.primary])
                let audit = try #require(try await store.auditLog(limit: 1).first)
                #expect(audit.action == "SIP platform saved" && audit.detail.contains("primary 127.0.0.1:5060 → 10.0.0.1:5070") && audit.detail.contains("expires 600 → 900"))
                let setHere = String(buffer: try await client.execute(uri: "/cms/sip", method: .get, headers: [.cookie: s.cookie]).body)
                #expect(setHere.contains("Set here on") && setHere.contains("reset-sip"))

                #expect(try await ExtensionPagesTests.post(client, "/cms/sip/reset", s, "").status == .seeOther)
                let reset = try await store.sipPlatformSettings()
                #expect(reset == nil)
                #expect(applied.withLock { $0.count == 2 && $0[1] == nil })
            }
        }
    }

    @Test func payloadSettingsAreCheckedAppliedAndReset() async throws {
        try await AdminHTTPTests.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            let applied = Mutex<[PayloadSettings?]>([])
            let payload = PayloadBackend(configured: { PayloadSettings(srtpMode: "off", audioCodecs: ["pcmu", "pcma"]) }, apply: { s in applied.withLock { $0.append(s) } })
            try await AdminHTTPTests.app(store, backend: AdminBackend(snapshot: { DashboardSnapshot() }, payload: payload)).test(.live) { client in
                let s = try await ExtensionPagesTests.session(client)
                let page = String(buffer: try await client.execute(uri: "/cms/payload", method: .get, headers: [.cookie: s.cookie]).body)
                #expect(page.contains("id=\"srtp-off\" name=\"srtp\" value=\"off\" checked"))
                let none = try await ExtensionPagesTests.post(client, "/cms/payload", s, "srtp=required&order-pcmu=1")
                #expect(none.status == .badRequest && String(buffer: none.body).contains("id=\"codecs-error\""), "no codec enabled")
                let mode = try await ExtensionPagesTests.post(client, "/cms/payload", s, "srtp=sometimes&codec=pcmu&order-pcmu=1")
                #expect(mode.status == .badRequest && String(buffer: mode.body).contains("id=\"srtp-error\""))
                #expect(applied.withLock { $0.isEmpty })
                let video = try await ExtensionPagesTests.post(client, "/cms/payload", s, "srtp=off&codec=pcmu&video=vp8&video=vp8")
                #expect(video.status == .badRequest && String(buffer: video.body).contains("id=\"video-error\""))
                #expect(applied.withLock { $0.isEmpty })
                let ok = try await ExtensionPagesTests.post(client, "/cms/payload", s,
                                                            "srtp=required&codec=pcmu&order-pcmu=3&codec=pcma&order-pcma=2&codec=opus&order-opus=1&order-vp8=1&video=vp9&order-vp9=2&video=h264&order-h264=2")
                #expect(ok.status == .seeOther)
                let stored = try #require(try await store.payloadSettings())
                #expect(stored.srtpMode == "required" && stored.audioCodecs == ["opus", "pcma", "pcmu"], "the chosen places order the codecs")
                #expect(stored.videoCodecs == ["vp9", "h264"], "unticked VP8 is off; a tie keeps the list's order")
                #expect(applied.withLock { $0.map { $0?.srtpMode } } == ["required"])
                #expect(try await store.auditLog(limit: 1).first?.detail == "srtp off → required; audio pcmu,pcma → opus,pcma,pcmu; video vp8 → vp9,h264")
                let shown = String(buffer: try await client.execute(uri: "/cms/payload", method: .get, headers: [.cookie: s.cookie]).body)
                #expect(shown.contains("id=\"codec-opus\" name=\"codec\" value=\"opus\" checked") && shown.contains("Not in effect yet"))
                #expect(try await ExtensionPagesTests.post(client, "/cms/payload/reset", s, "").status == .seeOther)
                let reset = try await store.payloadSettings()
                #expect(reset == nil && applied.withLock { $0.count == 2 && $0[1] == nil })
            }
        }
    }

    @Test func aClientsSecretIsShownOnceAndRevocationRemovesIt() async throws {
        try await AdminHTTPTests.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            try await AdminHTTPTests.app(store).test(.live) { client in
                let s = try await ExtensionPagesTests.session(client)
                #expect(try await ExtensionPagesTests.post(client, "/cms/clients/create", s, "id=has%20space&minutes=20").status == .badRequest)
                #expect(try await ExtensionPagesTests.post(client, "/cms/clients/create", s, "id=crm&minutes=-1").status == .badRequest)
                let made = try await ExtensionPagesTests.post(client, "/cms/clients/create", s, "id=crm&minutes=0")
                #expect(made.status == .ok)
                let page = String(buffer: made.body)
                let secret = try #require(page.range(of: #"id="new-secret">[0-9a-f]{64}<"#, options: .regularExpression).map { String(page[$0].dropFirst(16).dropLast()) })
                #expect(try await store.verifyOAuthClient(id: "crm", secret: secret) != nil)
                #expect(page.contains("unlimited validity"), "0 minutes shows a warning")
                let again = String(buffer: try await client.execute(uri: "/cms/clients", method: .get, headers: [.cookie: s.cookie]).body)
                #expect(!again.contains(secret))
                // The WebRTC-secret switch: on shows a new secret once, which then signs session tokens; off drops it.
                #expect(again.contains("<span id=\"webrtc-crm\">off</span>"))
                let on = String(buffer: try await ExtensionPagesTests.post(client, "/cms/clients/webrtc", s, "id=crm&enabled=on").body)
                let webRTCSecret = try #require(on.range(of: #"id="webrtc-secret">[0-9a-f]{64}<"#, options: .regularExpression).map { String(on[$0].dropFirst(19).dropLast()) })
                #expect(on.contains("<span id=\"webrtc-crm\">on</span>"))
                try await store.addExtensions([ExtensionRecord(number: "3001", authentication: .none)])
                let signed = SignedSessionToken.sign(clientID: "crm", extension: "3001", expires: Int64(Date().timeIntervalSince1970) + 60, secret: webRTCSecret)
                #expect(try await store.session(signedToken: signed).extension == "3001")
                let shown = String(buffer: try await client.execute(uri: "/cms/clients", method: .get, headers: [.cookie: s.cookie]).body)
                #expect(!shown.contains(webRTCSecret))
                #expect(try await ExtensionPagesTests.post(client, "/cms/clients/webrtc", s, "id=crm&enabled=off").status == .seeOther)
                #expect(try await store.oauthClient(id: "crm")?.webRTCSecretEnabled == false)
                #expect(try await ExtensionPagesTests.post(client, "/cms/clients/webrtc", s, "id=nobody&enabled=on").status == .badRequest)
                #expect(try await store.auditLog(limit: 2).map(\.detail) == ["crm, off", "crm, on (new secret)"], "the secret itself is not audited")
                #expect(try await ExtensionPagesTests.post(client, "/cms/clients/revoke", s, "id=crm").status == .seeOther)
                #expect(try await store.oauthClient(id: "crm") == nil)
                #expect(try await ExtensionPagesTests.post(client, "/cms/clients/revoke", s, "id=crm").status == .notFound)
            }
        }
    }
}

@Suite("Export and import pages")
struct TransferPageTests {
    static func multipart(csrf: String, file: String, boundary: String = "----tandem-test-7d1") -> (String, ByteBuffer) {
        let body = "--\(boundary)\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n\(csrf)\r\n"
            + "--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"export.json\"\r\nContent-Type: application/json\r\n\r\n\(file)\r\n"
            + "--\(boundary)--\r\n"
        return ("multipart/form-data; boundary=\(boundary)", ByteBuffer(string: body))
    }

    @Test func multipartBodiesParseAndMalformedOnesAreErrors() throws {
        let (type, buffer) = Self.multipart(csrf: "tok", file: "{\"a\":1}\r\n--not-the-boundary")
        let boundary = try #require(MultipartBody.boundary(contentType: type))
        let form = try MultipartBody(parsing: Array(buffer.readableBytesView), boundary: boundary)
        #expect(form["csrf"]?.body == Array("tok".utf8))
        #expect(form["file"]?.filename == "export.json")
        #expect(form["file"]?.body == Array("{\"a\":1}\r\n--not-the-boundary".utf8))
        #expect(MultipartBody.boundary(contentType: "multipart/form-data") == nil)
        #expect(MultipartBody.boundary(contentType: "application/json; boundary=x") == nil)
        #expect(throws: FormBody.ParseError.invalidEncoding) { try MultipartBody(parsing: Array("--b\r\nno headers end".utf8), boundary: "b") }
        #expect(throws: FormBody.ParseError.invalidEncoding) { try MultipartBody(parsing: Array("garbage".utf8), boundary: "b") }
        let many = (0..<20).map { "--b\r\nContent-Disposition: form-data; name=\"f\($0)\"\r\n\r\nx\r\n" }.joined() + "--b--"
        #expect(throws: FormBody.ParseError.tooManyFields(limit: MultipartBody.maximumParts)) { try MultipartBody(parsing: Array(many.utf8), boundary: "b") }
    }

    @Test func anUploadIsPreviewedThenAppliedOnce() async throws {
        try await AdminHTTPTests.withStore { store in
            try await store.createAdminAccount(name: "admin", passwordHash: try PasswordHash.make("a long password", cost: .minimal).description)
            try await store.addExtensions([ExtensionRecord(number: "3999", authentication: .none)])
            let ended = Mutex<[String]>([])
            let (held, _) = try await store.createSession(extension: "3999", clientID: "app", lifetime: 600)
            let backend = AdminBackend(snapshot: { DashboardSnapshot() }, endSession: { id in ended.withLock { $0.append(id) } })
            try await AdminHTTPTests.app(store, backend: backend).test(.live) { client in
                let s = try await ExtensionPagesTests.session(client)
                let exported = try await client.execute(uri: "/cms/transfer/extensions.json", method: .get, headers: [.cookie: s.cookie])
                #expect(exported.headers[.contentDisposition]?.hasPrefix("attachment; filename=\"tandem-extensions-") == true)
                #expect(try TransferDocument.parse(exported.body.readableBytesView).extensions?.map(\.extension) == ["3999"])

                let file = #"{"format":"tandem-export","version":1,"extensions":[{"extension":"3000","authentication":"none"},{"extension":"3001","authentication":"none"}]}"#
                let (type, body) = Self.multipart(csrf: s.csrf, file: file)
                let forged = Self.multipart(csrf: "forged", file: file)
                #expect(try await client.execute(uri: "/cms/transfer/preview", method: .post, headers: [.contentType: forged.0, .cookie: s.cookie], body: forged.1).status == .forbidden)
                let bad = Self.multipart(csrf: s.csrf, file: #"{"format":"tandem-export","version":9,"extensions":[]}"#)
                let refused = try await client.execute(uri: "/cms/transfer/preview", method: .post, headers: [.contentType: bad.0, .cookie: s.cookie], body: bad.1)
                #expect(refused.status == .badRequest)
                #expect(String(buffer: refused.body).contains("Nothing was imported: the file is version 9"))

                let preview = try await client.execute(uri: "/cms/transfer/preview", method: .post, headers: [.contentType: type, .cookie: s.cookie], body: body)
                #expect(preview.status == .ok)
                let page = String(buffer: preview.body)
                #expect(page.contains("<td>Extensions</td><td>2: 3000, 3001</td><td>—</td><td>1: 3999</td>"))
                #expect(try await store.extensions().map(\.number) == ["3999"], "a preview changes nothing")
                let token = try #require(page.range(of: #"name="token" value="[^"]+""#, options: .regularExpression).map { String(page[$0].dropFirst(20).dropLast()) })
                let applied = try await ExtensionPagesTests.post(client, "/cms/transfer/apply", s, "token=\(token)")
                #expect(applied.status == .seeOther)
                #expect(try await store.extensions().map(\.number) == ["3000", "3001"])
                #expect(ended.withLock { $0 } == [held.id])
                #expect(try await ExtensionPagesTests.post(client, "/cms/transfer/apply", s, "token=\(token)").status == .conflict, "once")
                #expect(try await store.auditLog(limit: 1).first?.detail == "extensions +2 ~0 -1")
            }
        }
    }
}

@Suite("Admin accounts and sessions in the Store")
struct AdminStoreTests {
    @Test func sessionsExpireWhenIdleAndAtTheirLifetime() async throws {
        try await AdminHTTPTests.withStore { store in
            try await store.createAdminAccount(name: "ops", passwordHash: "$scrypt$x")
            await #expect(throws: StoreError.duplicateAdmin("ops")) { try await store.createAdminAccount(name: "ops", passwordHash: "$scrypt$y") }
            await #expect(throws: StoreError.self) { try await store.createAdminAccount(name: "no spaces", passwordHash: "$scrypt$y") }
            let t0 = Date(timeIntervalSince1970: 2_000_000)
            let (_, token) = try await store.createAdminSession(account: "ops", source: "127.0.0.1", now: t0)
            // Used every 20 min: idle never reaches 30 min, but the lifetime of 1 h ends it.
            for minutes in [20.0, 40, 59] {
                #expect(try await store.adminSession(token: token, idleTimeout: 1800, lifetime: 3600, now: t0.addingTimeInterval(minutes * 60)) != nil)
            }
            #expect(try await store.adminSession(token: token, idleTimeout: 1800, lifetime: 3600, now: t0.addingTimeInterval(3601)) == nil)
            let (_, idle) = try await store.createAdminSession(account: "ops", source: "127.0.0.1", now: t0)
            #expect(try await store.adminSession(token: idle, idleTimeout: 1800, lifetime: 3600, now: t0.addingTimeInterval(1801)) == nil)
        }
    }

    @Test func aPasswordResetEndsTheAccountsSessions() async throws {
        try await AdminHTTPTests.withStore { store in
            try await store.createAdminAccount(name: "ops", passwordHash: "$scrypt$x")
            let (_, token) = try await store.createAdminSession(account: "ops", source: "127.0.0.1")
            try await store.setAdminPassword(name: "ops", passwordHash: "$scrypt$new")
            #expect(try await store.adminSession(token: token, idleTimeout: 1800, lifetime: 3600) == nil)
            #expect(try await store.adminAccount(name: "ops")?.passwordHash == "$scrypt$new")
            await #expect(throws: StoreError.unknownAdmin("nobody")) { try await store.setAdminPassword(name: "nobody", passwordHash: "$scrypt$new") }
        }
    }
}
