import Crypto
import Admin
import Foundation
import Logging
import NIOCore
import NIOSSL
import Synchronization
import X509

/// The certificate Tandem's TLS listeners (HTTPS, TURN over TLS, SIP over TLS) present,
/// replaceable while running: each listener's configuration asks for it at every handshake
/// (the TLS context callback after the ClientHello), so a new certificate is used by the next
/// connection without a restart, and connections already open keep theirs.
public final class LiveCertificate: Sendable {
    private let current: Mutex<TLSMaterial>

    public init(_ material: TLSMaterial) {
        current = Mutex(material)
    }

    /// The material presented now.
    public var material: TLSMaterial { current.withLock { $0 } }

    /// Presents `material` from the next handshake on.
    public func replace(_ material: TLSMaterial) {
        current.withLock { $0 = material }
    }

    /// A server configuration (TLS 1.2 or newer) that presents the current material at each handshake.
    public func serverConfiguration(applicationProtocols: [String] = []) -> TLSConfiguration {
        var configuration = material.serverConfiguration(applicationProtocols: applicationProtocols)
        configuration.sslContextCallback = { [self] _, promise in
            let now = self.material
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = now.certificateChain.map { .certificate($0) }
            override.privateKey = .privateKey(now.privateKey)
            promise.succeed(override)
        }
        return configuration
    }
}

extension CertificateStatus {
    /// The leaf's subject, subjectAltName entries (RFC 5280 §4.2.1.6), issuer, validity and
    /// SHA-256 fingerprint of its DER.
    public init(_ leaf: NIOSSLCertificate, source: String = "", hostName: String = "") throws {
        let der = try leaf.toDERBytes()
        let certificate = try Certificate(derEncoded: der)
        let names: [String] = (try certificate.extensions.subjectAlternativeNames)?.map { name -> String in
            switch name {
            case .dnsName(let dns): return dns
            case .ipAddress(let bytes): return IPAddress(bytes: Array(bytes.bytes))?.description ?? "\(bytes)"
            default: return "\(name)"
            }
        } ?? []
        self.init(subject: certificate.subject.description, alternativeNames: names, issuer: certificate.issuer.description,
                  notValidBefore: certificate.notValidBefore, notValidAfter: certificate.notValidAfter,
                  fingerprint: Array(SHA256.hash(data: der)).map { String(format: "%02X", $0) }.joined(separator: ":"),
                  source: source, hostName: hostName)
    }
}

/// An uploaded certificate (RFC 7468 PEM): checked before use, then kept in
/// `<data-directory>/tls/uploaded.crt`, `uploaded.key` (mode 0600) and `uploaded-ca.crt`,
/// where it takes precedence over `tls.certificate` until removed.
public enum CertificateUpload {
    public static let certificateFileName = "uploaded.crt"
    public static let privateKeyFileName = "uploaded.key"
    public static let caFileName = "uploaded-ca.crt"
    /// Largest PEM accepted per field.
    public static let maximumPEMSize = 64 * 1024

    /// Why an upload cannot be used: the form field it concerns and the reason.
    public struct Problem: Error, Equatable, Sendable, CustomStringConvertible {
        public var field: String
        public var reason: String
        public var description: String { reason }
    }

    /// Checks the upload: PEM that parses, a key that matches the leaf, a leaf valid now
    /// whose subjectAltName lists `hostName` (RFC 6125 §6.4: a `*.` wildcard covers one
    /// label; an IP address matches an iPAddress entry), and a CA chain that parses.
    public static func validate(certificate: String, privateKey: String, caCertificates: String, hostName: String, now: Date = Date()) throws(Problem) -> TLSMaterial {
        for (field, text) in [("certificate", certificate), ("key", privateKey), ("ca", caCertificates)] where text.utf8.count > maximumPEMSize {
            throw Problem(field: field, reason: "larger than \(maximumPEMSize / 1024) KiB")
        }
        let chain: [NIOSSLCertificate]
        do { chain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.utf8)) } catch { chain = [] }
        guard let leaf = chain.first else { throw Problem(field: "certificate", reason: "no PEM certificate (-----BEGIN CERTIFICATE-----) could be read") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: Array(privateKey.utf8), format: .pem)
        } catch {
            throw Problem(field: "key", reason: "no unencrypted PEM private key could be read")
        }
        var ca: [NIOSSLCertificate] = []
        if !caCertificates.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            do { ca = try NIOSSLCertificate.fromPEMBytes(Array(caCertificates.utf8)) } catch { ca = [] }
            guard !ca.isEmpty else { throw Problem(field: "ca", reason: "no PEM certificate could be read from the CA chain") }
        }
        let summary: CertificateStatus
        do { summary = try CertificateStatus(leaf) } catch { throw Problem(field: "certificate", reason: "the certificate cannot be decoded: \(error)") }
        guard summary.notValidAfter > now else { throw Problem(field: "certificate", reason: "the certificate expired on \(ISO8601DateFormatter().string(from: summary.notValidAfter))") }
        guard summary.notValidBefore <= now else { throw Problem(field: "certificate", reason: "the certificate is not valid before \(ISO8601DateFormatter().string(from: summary.notValidBefore))") }
        guard matches(hostName, summary.alternativeNames) else {
            throw Problem(field: "certificate", reason: "its subjectAltName (\(summary.alternativeNames.joined(separator: ", "))) does not list the host name \(hostName) (tls.host-name)")
        }
        let material = TLSMaterial(certificateChain: chain + ca.filter { !chain.contains($0) }, privateKey: key, caCertificates: ca,
                                   source: .uploaded, notValidAfter: summary.notValidAfter)
        do throws(TLSMaterialError) { try material.checkKeyMatchesCertificate() } catch { throw Problem(field: "key", reason: "the private key does not belong to the certificate") }
        return material
    }

    /// RFC 6125 §6.4 host name matching against subjectAltName entries.
    public static func matches(_ hostName: String, _ names: [String]) -> Bool {
        let host = hostName.lowercased()
        if let ip = IPAddress(host) { return names.contains { IPAddress($0) == ip } }
        return names.contains { raw in
            let name = raw.lowercased()
            if name == host { return true }
            guard name.hasPrefix("*."), let dot = host.firstIndex(of: ".") else { return false }
            return host[host.index(after: dot)...] == name.dropFirst(2) && !host[..<dot].isEmpty
        }
    }

    /// Stores a validated upload into `directory` (each file written whole, then renamed).
    public static func install(certificate: String, privateKey: String, caCertificates: String, directory: String) throws(TLSMaterialError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw .cannotWrite(path: directory, reason: "\(error)")
        }
        let path = { (name: String) in URL(fileURLWithPath: directory).appendingPathComponent(name).path }
        try SelfSignedCertificate.writeAtomically(privateKey, to: path(privateKeyFileName), permissions: 0o600)
        try SelfSignedCertificate.writeAtomically(caCertificates, to: path(caFileName), permissions: 0o644)
        // The certificate last: its presence marks the upload complete.
        try SelfSignedCertificate.writeAtomically(certificate, to: path(certificateFileName), permissions: 0o644)
    }

    /// Removes an upload from `directory` (the configured or self-signed certificate applies again).
    public static func remove(directory: String) {
        for name in [certificateFileName, privateKeyFileName, caFileName] {
            try? FileManager.default.removeItem(atPath: URL(fileURLWithPath: directory).appendingPathComponent(name).path)
        }
    }

    /// The upload in `directory`, when one is complete.
    static func load(directory: String) throws(TLSMaterialError) -> TLSMaterial? {
        let path = { (name: String) in URL(fileURLWithPath: directory).appendingPathComponent(name).path }
        guard FileManager.default.fileExists(atPath: path(certificateFileName)), FileManager.default.fileExists(atPath: path(privateKeyFileName)) else { return nil }
        let ca = path(caFileName)
        let hasCA = ((try? String(contentsOfFile: ca, encoding: .utf8)) ?? "").contains("BEGIN CERTIFICATE")
        let files = try TLSMaterial.loadFiles(certificatePath: path(certificateFileName), privateKeyPath: path(privateKeyFileName), caCertificatePath: hasCA ? ca : nil)
        return TLSMaterial(certificateChain: files.certificateChain, privateKey: files.privateKey, caCertificates: files.caCertificates,
                           source: .uploaded, notValidAfter: files.notValidAfter)
    }
}
