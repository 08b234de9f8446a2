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

@Suite("Certificate upload")
struct CertificateUploadTests {
    let logger = Logger(label: "test.tls")

    @Test func aGoodUploadIsAcceptedAndEveryFaultNamesItsField() throws {
        let good = try SelfSignedCertificate.generate(hostname: "gw.example")
        let other = try SelfSignedCertificate.generate(hostname: "gw.example")
        let material = try CertificateUpload.validate(certificate: good.certificate, privateKey: good.privateKey, caCertificates: "", hostName: "gw.example")
        #expect(material.source == .uploaded && material.certificateChain.count == 1)
        // The upload may be reached by its IP address too, when the SAN lists it.
        _ = try CertificateUpload.validate(certificate: good.certificate, privateKey: good.privateKey, caCertificates: other.certificate, hostName: "127.0.0.1")

        func problem(_ certificate: String, _ key: String, _ ca: String = "", host: String = "gw.example", now: Date = Date()) -> CertificateUpload.Problem? {
            do {
                _ = try CertificateUpload.validate(certificate: certificate, privateKey: key, caCertificates: ca, hostName: host, now: now)
                return nil
            } catch {
                return error
            }
        }
        #expect(problem(good.certificate, other.privateKey)?.field == "key", "the key of another certificate")
        #expect(problem(good.certificate, good.privateKey, host: "other.example")?.reason.contains("does not list the host name other.example") == true)
        #expect(problem(good.certificate, good.privateKey, now: Date().addingTimeInterval(400 * 86_400))?.reason.contains("expired") == true)
        #expect(problem(good.certificate, good.privateKey, now: Date().addingTimeInterval(-86_400))?.reason.contains("not valid before") == true)
        #expect(problem("not a certificate", good.privateKey)?.field == "certificate")
        #expect(problem(good.certificate, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")?.field == "key")
        #expect(problem(good.certificate, good.privateKey, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")?.field == "ca")
        #expect(problem(String(repeating: "A", count: CertificateUpload.maximumPEMSize + 1), good.privateKey)?.field == "certificate")
    }

    @Test func hostNamesMatchAsRFC6125Says() {
        #expect(CertificateUpload.matches("GW.example.com", ["gw.example.com"]))
        #expect(CertificateUpload.matches("a.example.com", ["*.example.com"]))
        #expect(!CertificateUpload.matches("b.a.example.com", ["*.example.com"]), "a wildcard covers one label")
        #expect(!CertificateUpload.matches("example.com", ["*.example.com"]))
        #expect(CertificateUpload.matches("::1", ["0:0:0:0:0:0:0:1"]))
        #expect(!CertificateUpload.matches("127.0.0.2", ["127.0.0.1", "localhost"]))
    }

    @Test func anInstalledUploadWinsAtTheNextStartUntilRemoved() throws {
        let directory = try TemporaryDirectory()
        let tls = directory.path + "/tls"
        let upload = try SelfSignedCertificate.generate(hostname: "gw.example")
        let first = try TLSMaterial.load(.init(), dataDirectory: directory.path, hostname: "gw.example", logger: logger)
        #expect(first.isSelfSigned)
        try CertificateUpload.install(certificate: upload.certificate, privateKey: upload.privateKey, caCertificates: "", directory: tls)
        #expect((try FileManager.default.attributesOfItem(atPath: tls + "/uploaded.key")[.posixPermissions] as? Int) == 0o600)
        let second = try TLSMaterial.load(.init(), dataDirectory: directory.path, hostname: "gw.example", logger: logger)
        #expect(second.source == .uploaded)
        #expect(second.certificateChain == (try NIOSSLCertificate.fromPEMBytes(Array(upload.certificate.utf8))))
        CertificateUpload.remove(directory: tls)
        let third = try TLSMaterial.load(.init(), dataDirectory: directory.path, hostname: "gw.example", logger: logger)
        #expect(third.isSelfSigned && third.certificateChain == first.certificateChain)
    }
}
