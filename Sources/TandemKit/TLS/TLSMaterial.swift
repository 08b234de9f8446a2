import Foundation
import Logging
import NIOSSL

/// The certificate and key Tandem serves TLS with: HTTPS on `http.port` and TURN over
/// TLS on `turn.tls-port` (RFC 8656 §3.1) share them.
///
/// Loaded from the PEM files of `tls.certificate` / `tls.private-key` (plus the
/// intermediates of `tls.ca-certificate`), or, when none are configured, a self-signed
/// certificate generated once into `<data-directory>/tls/` (see ``SelfSignedCertificate``).
public struct TLSMaterial: Sendable {
    /// Where the material came from.
    public enum Source: Sendable, Equatable {
        /// Operator-supplied files.
        case configured(certificatePath: String, privateKeyPath: String, caCertificatePath: String?)
        /// The generated self-signed certificate; `generated` is true when this start created it.
        case selfSigned(certificatePath: String, privateKeyPath: String, generated: Bool)
        /// Uploaded in /cms (``CertificateUpload``), kept under `<data-directory>/tls/`.
        case uploaded
    }

    /// The leaf certificate first, then any intermediates/CA certificates.
    public let certificateChain: [NIOSSLCertificate]
    public let privateKey: NIOSSLPrivateKey
    /// Certificates from `tls.ca-certificate` (also appended to ``certificateChain``).
    public let caCertificates: [NIOSSLCertificate]
    public let source: Source
    /// When the leaf certificate expires.
    public let notValidAfter: Date

    public var isSelfSigned: Bool {
        if case .selfSigned = source { return true }
        return false
    }

    /// A server configuration for these credentials: TLS 1.2 or newer, no client
    /// certificates. `applicationProtocols` sets ALPN (e.g. `["http/1.1"]`).
    public func serverConfiguration(applicationProtocols: [String] = []) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) },
            privateKey: .privateKey(privateKey))
        configuration.minimumTLSVersion = .tlsv12
        configuration.applicationProtocols = applicationProtocols
        return configuration
    }

    /// Loads the configured files, or generates/reuses the self-signed certificate.
    /// Logs a warning when the certificate is self-signed.
    public static func load(
        _ settings: TandemConfiguration.TLS,
        dataDirectory: String,
        hostname: String = SelfSignedCertificate.currentHostname(),
        now: Date = Date(),
        logger: Logger
    ) throws(TLSMaterialError) -> TLSMaterial {
        let material: TLSMaterial
        let directory = URL(fileURLWithPath: dataDirectory).appendingPathComponent("tls").path
        if let uploaded = try CertificateUpload.load(directory: directory) {
            material = uploaded
            logger.info("Using the certificate uploaded in /cms", metadata: ["not-valid-after": "\(material.notValidAfter)"])
        } else if let certificatePath = settings.certificatePath, let keyPath = settings.privateKeyPath {
            material = try loadFiles(certificatePath: certificatePath, privateKeyPath: keyPath, caCertificatePath: settings.caCertificatePath)
            logger.info(
                "Loaded TLS certificate",
                metadata: ["certificate": "\(certificatePath)", "not-valid-after": "\(material.notValidAfter)"])
            if material.notValidAfter < now {
                logger.error("The configured TLS certificate has expired", metadata: ["certificate": "\(certificatePath)"])
            }
        } else {
            material = try SelfSignedCertificate.loadOrCreate(directory: directory, hostname: hostname, now: now, logger: logger)
            if case .selfSigned(let certificatePath, _, _) = material.source {
                logger.warning(
                    "Using a SELF-SIGNED TLS certificate: browsers and TURN clients will not trust it. Set tls.certificate and tls.private-key for production.",
                    metadata: ["certificate": "\(certificatePath)", "not-valid-after": "\(material.notValidAfter)"])
            }
        }
        return material
    }

    /// Reads PEM files and checks that the key belongs to the certificate.
    static func loadFiles(certificatePath: String, privateKeyPath: String, caCertificatePath: String?) throws(TLSMaterialError) -> TLSMaterial {
        let chain = try readCertificates(certificatePath)
        let caCertificates = try caCertificatePath.map { path throws(TLSMaterialError) in try readCertificates(path) } ?? []
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: Array(try readFile(privateKeyPath)), format: .pem)
        } catch let error as TLSMaterialError {
            throw error
        } catch {
            throw .invalidPrivateKey(path: privateKeyPath, reason: "\(error)")
        }
        let fullChain = chain + caCertificates.filter { !chain.contains($0) }
        let material = TLSMaterial(
            certificateChain: fullChain, privateKey: key, caCertificates: caCertificates,
            source: .configured(certificatePath: certificatePath, privateKeyPath: privateKeyPath, caCertificatePath: caCertificatePath),
            notValidAfter: Date(timeIntervalSince1970: TimeInterval(chain[0].notValidAfter)))
        try material.checkKeyMatchesCertificate()
        return material
    }

    init(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey, caCertificates: [NIOSSLCertificate], source: Source, notValidAfter: Date) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.caCertificates = caCertificates
        self.source = source
        self.notValidAfter = notValidAfter
    }

    /// BoringSSL refuses a context whose key does not match the leaf certificate.
    func checkKeyMatchesCertificate() throws(TLSMaterialError) {
        do {
            _ = try NIOSSLContext(configuration: serverConfiguration())
        } catch {
            throw .keyDoesNotMatchCertificate(reason: "\(error)")
        }
    }

    private static func readCertificates(_ path: String) throws(TLSMaterialError) -> [NIOSSLCertificate] {
        let bytes = try readFile(path)
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(Array(bytes))
        } catch {
            throw .invalidCertificate(path: path, reason: "\(error)")
        }
        guard !certificates.isEmpty else { throw .invalidCertificate(path: path, reason: "no PEM certificate in the file") }
        return certificates
    }

    static func readFile(_ path: String) throws(TLSMaterialError) -> Data {
        guard FileManager.default.fileExists(atPath: path) else { throw .fileNotFound(path: path) }
        do {
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadableFile(path: path, reason: "\(error)")
        }
    }
}

/// Why TLS material could not be loaded or generated.
public enum TLSMaterialError: Error, Equatable, Sendable, CustomStringConvertible {
    case fileNotFound(path: String)
    case unreadableFile(path: String, reason: String)
    case invalidCertificate(path: String, reason: String)
    case invalidPrivateKey(path: String, reason: String)
    case keyDoesNotMatchCertificate(reason: String)
    case generationFailed(reason: String)
    case cannotWrite(path: String, reason: String)

    public var description: String {
        switch self {
        case .fileNotFound(let path): "TLS file \(path) does not exist"
        case .unreadableFile(let path, let reason): "cannot read TLS file \(path): \(reason)"
        case .invalidCertificate(let path, let reason): "\(path) holds no usable PEM certificate: \(reason)"
        case .invalidPrivateKey(let path, let reason): "\(path) holds no usable unencrypted PEM private key: \(reason)"
        case .keyDoesNotMatchCertificate(let reason): "the private key does not match the certificate: \(reason)"
        case .generationFailed(let reason): "cannot generate the self-signed certificate: \(reason)"
        case .cannotWrite(let path, let reason): "cannot write \(path): \(reason)"
        }
    }
}
