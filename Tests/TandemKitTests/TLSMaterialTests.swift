import Foundation
import Logging
import NIOSSL
import Testing
import X509

@testable import TandemKit

@Suite("TLS material")
struct TLSMaterialTests {
    let logger = Logger(label: "test.tls")

    @Test func generatesOnceThenReuses() throws {
        let directory = try TemporaryDirectory()
        let first = try TLSMaterial.load(.init(), dataDirectory: directory.path, hostname: "tandem-test.example", logger: logger)
        #expect(first.isSelfSigned)
        guard case .selfSigned(let certificatePath, let keyPath, let generated) = first.source else {
            Issue.record("expected a self-signed source")
            return
        }
        #expect(generated)
        #expect(certificatePath == directory.path + "/tls/self-signed.crt")
        #expect((try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int) == 0o600)

        let second = try TLSMaterial.load(.init(), dataDirectory: directory.path, hostname: "tandem-test.example", logger: logger)
        #expect(second.source == .selfSigned(certificatePath: certificatePath, privateKeyPath: keyPath, generated: false))
        #expect(second.certificateChain == first.certificateChain)

        // The certificate: P-256, a year, SANs for localhost, the host name and both loopbacks.
        let certificate = try Certificate(pemEncoded: String(contentsOfFile: certificatePath, encoding: .utf8))
        #expect(certificate.signatureAlgorithm == .ecdsaWithSHA256)
        let days = certificate.notValidAfter.timeIntervalSince(certificate.notValidBefore) / 86400
        #expect(days > 365 && days < 366)
        let sans = try #require(try certificate.extensions.subjectAlternativeNames)
        #expect(sans.contains(.dnsName("localhost")))
        #expect(sans.contains(.dnsName("tandem-test.example")))
        #expect(sans.contains(.ipAddress(.init(contentBytes: [127, 0, 0, 1]))))
        #expect(sans.contains(.ipAddress(.init(contentBytes: IPAddress.ipv6Loopback.bytes[...]))))

        let configuration = first.serverConfiguration(applicationProtocols: ["http/1.1"])
        #expect(configuration.minimumTLSVersion == .tlsv12)
        _ = try NIOSSLContext(configuration: configuration)
    }

    @Test func regeneratesWhenCloseToExpiry() throws {
        let directory = try TemporaryDirectory()
        let now = Date()
        let old = try TLSMaterial.load(.init(), dataDirectory: directory.path, hostname: "h", now: now.addingTimeInterval(-340 * 86400), logger: logger)
        let renewed = try TLSMaterial.load(.init(), dataDirectory: directory.path, hostname: "h", now: now, logger: logger)
        guard case .selfSigned(_, _, let generated) = renewed.source else { return }
        #expect(generated)
        #expect(renewed.notValidAfter > old.notValidAfter)
    }

    @Test func loadsConfiguredFilesWithCAChain() throws {
        let directory = try TemporaryDirectory()
        let leaf = try SelfSignedCertificate.generate(hostname: "leaf.example")
        let ca = try SelfSignedCertificate.generate(hostname: "ca.example")
        let certificatePath = try directory.write("cert.pem", leaf.certificate)
        let keyPath = try directory.write("key.pem", leaf.privateKey)
        let caPath = try directory.write("ca.pem", ca.certificate)
        let material = try TLSMaterial.load(
            .init(certificatePath: certificatePath, privateKeyPath: keyPath, caCertificatePath: caPath),
            dataDirectory: directory.path, logger: logger)
        #expect(!material.isSelfSigned)
        #expect(material.certificateChain.count == 2)
        #expect(material.caCertificates.count == 1)
        #expect(!FileManager.default.fileExists(atPath: directory.path + "/tls"), "nothing is generated when files are configured")
    }

    @Test func reportsMissingBadAndMismatchedFiles() throws {
        let directory = try TemporaryDirectory()
        let one = try SelfSignedCertificate.generate(hostname: "one")
        let two = try SelfSignedCertificate.generate(hostname: "two")
        let certificatePath = try directory.write("cert.pem", one.certificate)
        let otherKey = try directory.write("other-key.pem", two.privateKey)
        let garbage = try directory.write("garbage.pem", "not a certificate")

        #expect(throws: TLSMaterialError.fileNotFound(path: "/nonexistent.pem")) {
            try TLSMaterial.load(.init(certificatePath: "/nonexistent.pem", privateKeyPath: otherKey), dataDirectory: directory.path, logger: logger)
        }
        #expect {
            try TLSMaterial.load(.init(certificatePath: garbage, privateKeyPath: otherKey), dataDirectory: directory.path, logger: logger)
        } throws: { error in
            if case .invalidCertificate = error as? TLSMaterialError { return true }
            return false
        }
        #expect {
            try TLSMaterial.load(.init(certificatePath: certificatePath, privateKeyPath: otherKey), dataDirectory: directory.path, logger: logger)
        } throws: { error in
            if case .keyDoesNotMatchCertificate = error as? TLSMaterialError { return true }
            return false
        }
    }

    @Test func dnsNameCheck() {
        #expect(SelfSignedCertificate.isDNSName("host-1.example.org"))
        #expect(!SelfSignedCertificate.isDNSName("-bad.example"))
        #expect(!SelfSignedCertificate.isDNSName("under_score"))
        #expect(!SelfSignedCertificate.isDNSName("10.0.0.1"))
    }
}
