import Crypto
import Foundation
import Logging
import NIOSSL
import SwiftASN1
import X509

/// The self-signed certificate Tandem makes when no certificate is configured: ECDSA
/// P-256 with SHA-256 (RFC 5480, RFC 5758), valid one year, for `localhost`, the host
/// name, 127.0.0.1 and ::1 (subjectAltName, RFC 5280 §4.2.1.6; RFC 6125 matches on it).
///
/// Written once to `<data-directory>/tls/self-signed.crt` and `self-signed.key` (mode 0600),
/// then reused; replaced when unreadable or within 30 days of expiry.
public enum SelfSignedCertificate {
    public static let certificateFileName = "self-signed.crt"
    public static let privateKeyFileName = "self-signed.key"
    public static let validity: TimeInterval = 365 * 24 * 3600
    /// Remaining validity below which a stored certificate is replaced.
    public static let renewalMargin: TimeInterval = 30 * 24 * 3600

    /// The host name of this machine (`gethostname`), or `localhost`.
    public static func currentHostname() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
        let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return name.isEmpty ? "localhost" : name
    }

    /// Reuses the stored certificate when still good, else generates and stores a new one.
    public static func loadOrCreate(directory: String, hostname: String, now: Date = Date(), logger: Logger) throws(TLSMaterialError) -> TLSMaterial {
        let certificatePath = URL(fileURLWithPath: directory).appendingPathComponent(certificateFileName).path
        let keyPath = URL(fileURLWithPath: directory).appendingPathComponent(privateKeyFileName).path
        if FileManager.default.fileExists(atPath: certificatePath), FileManager.default.fileExists(atPath: keyPath) {
            do {
                let stored = try TLSMaterial.loadFiles(certificatePath: certificatePath, privateKeyPath: keyPath, caCertificatePath: nil)
                if stored.notValidAfter.timeIntervalSince(now) > renewalMargin {
                    return TLSMaterial(
                        certificateChain: stored.certificateChain, privateKey: stored.privateKey, caCertificates: [],
                        source: .selfSigned(certificatePath: certificatePath, privateKeyPath: keyPath, generated: false),
                        notValidAfter: stored.notValidAfter)
                }
                logger.notice("The self-signed certificate expires soon; generating a new one", metadata: ["not-valid-after": "\(stored.notValidAfter)"])
            } catch {
                logger.warning("Cannot reuse the stored self-signed certificate; generating a new one", metadata: ["error": "\(error)"])
            }
        }

        let pem = try generate(hostname: hostname, now: now)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .cannotWrite(path: directory, reason: "\(error)")
        }
        try writeAtomically(pem.privateKey, to: keyPath, permissions: 0o600)
        try writeAtomically(pem.certificate, to: certificatePath, permissions: 0o644)
        logger.notice("Generated a self-signed TLS certificate", metadata: ["certificate": "\(certificatePath)", "hostname": "\(hostname)"])

        let material = try TLSMaterial.loadFiles(certificatePath: certificatePath, privateKeyPath: keyPath, caCertificatePath: nil)
        return TLSMaterial(
            certificateChain: material.certificateChain, privateKey: material.privateKey, caCertificates: [],
            source: .selfSigned(certificatePath: certificatePath, privateKeyPath: keyPath, generated: true),
            notValidAfter: material.notValidAfter)
    }

    /// A new key and certificate, as PEM text.
    public static func generate(hostname: String, now: Date = Date()) throws(TLSMaterialError) -> (certificate: String, privateKey: String) {
        do {
            let key = P256.Signing.PrivateKey()
            let certificateKey = Certificate.PrivateKey(key)
            let name = try DistinguishedName {
                OrganizationName("Tandem (self-signed)")
                CommonName(hostname)
            }
            var dnsNames = ["localhost"]
            if hostname != "localhost", isDNSName(hostname) { dnsNames.append(hostname) }
            let sans: [GeneralName] =
                dnsNames.map { .dnsName($0) } + [IPAddress.ipv4Loopback, IPAddress.ipv6Loopback].map { .ipAddress(ASN1OctetString(contentBytes: $0.bytes[...])) }
            let extensions = try Certificate.Extensions {
                // Self-issued and its own trust anchor: marked as a CA (pathlen 0) like
                // `openssl req -x509` does, or BoringSSL refuses it when a client trusts it explicitly.
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(sans)
                SubjectKeyIdentifier(hash: certificateKey.publicKey)
            }
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: certificateKey.publicKey,
                notValidBefore: now.addingTimeInterval(-3600),  // tolerate clients whose clocks run behind
                notValidAfter: now.addingTimeInterval(validity),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ecdsaWithSHA256,
                extensions: extensions,
                issuerPrivateKey: certificateKey)
            return (try certificate.serializeAsPEM().pemString, key.pemRepresentation)
        } catch {
            throw .generationFailed(reason: "\(error)")
        }
    }

    /// A host name usable as a dNSName SAN: LDH labels (RFC 1123 §2.1).
    static func isDNSName(_ name: String) -> Bool {
        guard !name.isEmpty, name.count <= 253, IPAddress(name) == nil else { return false }
        return name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            !label.isEmpty && label.count <= 63 && label.first != "-" && label.last != "-"
                && label.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
    }

    static func writeAtomically(_ text: String, to path: String, permissions: Int) throws(TLSMaterialError) {
        let temporary = path + ".tmp-\(getpid())"
        do {
            guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: permissions]) else {
                throw TLSMaterialError.cannotWrite(path: temporary, reason: "create failed")
            }
            guard rename(temporary, path) == 0 else {
                throw TLSMaterialError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
            }
        } catch {
            try? FileManager.default.removeItem(atPath: temporary)
            if let error = error as? TLSMaterialError { throw error }
            throw .cannotWrite(path: path, reason: "\(error)")
        }
    }
}
