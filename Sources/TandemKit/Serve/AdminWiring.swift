import Admin
import ControlAPI
import Foundation
import Gateway
import ServiceLifecycle
import Store
import TURN

extension TandemServer {
    /// `/cms` of this node: its allowed networks and session times from `cms.*`.
    static func adminConfiguration(_ context: ServeContext, secureCookies: Bool = true) -> AdminConfiguration {
        let networks = context.configuration.cms.allowedNetworks
        return AdminConfiguration(
            isAllowedSource: { text in
                guard let ip = IPAddress(text) else { return false }
                return networks.contains { $0.contains(ip) }
            },
            sessionIdleTimeout: TimeInterval(context.configuration.cms.sessionIdleTimeout),
            sessionLifetime: TimeInterval(context.configuration.cms.sessionLifetime),
            secureCookies: secureCookies)
    }

    /// What the dashboard shows, from the control API's own views of extensions and calls,
    /// the TURN server's counts and the process's CPU and memory.
    static func adminBackend(_ context: ServeContext, api: ControlAPIBackend, turn: TURNService?, sip: SIPService? = nil,
                             controller: CallController? = nil) -> AdminBackend {
        let started = Date()
        let realm = context.configuration.turn.realm
        let turnBackend = TURNBackend(
            status: {
                let server = turn?.current
                let listeners = server?.boundAddresses.withLock { $0.map { "\($0.0.rawValue) \($0.1.ipAddress ?? "?"):\($0.1.port ?? 0)" } } ?? []
                return TURNStatus(enabled: turn != nil, realm: realm, listeners: listeners, allocations: server?.liveCounts.allocations ?? 0)
            },
            validateAddresses: { relay, external in
                for r in relay where IPAddress(r) == nil { return "'\(r)' is not an IPv4 or IPv6 address" }
                for e in external {
                    do throws(ExternalAddressMapping.ParseError) { _ = try ExternalAddressMapping(parsing: e) } catch { return error.description }
                }
                return nil
            },
            apply: { settings in turn?.apply(settings) })
        let file = context.configuration.sip
        let sipListeners = file.listenAddresses.flatMap { address in
            file.transports.map { t in "\(t.rawValue) \(HostAndPort("\(address)").map(\.description) ?? "\(address)"):\(t == .tls ? file.tlsPort : file.listenPort)" }
        }
        let sipBackend = SIPBackend(
            status: {
                guard let agent = sip?.agent else { return SIPStatus(running: false) }
                let platform = agent.currentPlatform, reach = agent.reachability, summary = agent.summary
                return SIPStatus(running: true, listeners: sipListeners, primary: platform.primary.description, secondary: platform.secondary?.description ?? "",
                                 primaryReachable: reach[.primary], secondaryReachable: platform.secondary == nil ? nil : reach[.secondary],
                                 registered: summary.registeredCount, registering: summary.registering, failed: summary.failed)
            },
            configured: { SIPService.configured(file) },
            validate: { await SIPService.validate($0) },
            apply: { await sip?.apply($0) })
        let certificates = certificateBackend(context)
        let configuration = context.configuration
        let logging = context.logging
        let metrics = context.metrics
        let diagnostics = DiagnosticsBackend(
            configured: { TandemServer.configuredDiagnostics(configuration.log) },
            current: {
                guard let logging else { return nil }
                let (fallback, bySource) = logging.levels.current
                return DiagnosticsSettings(defaultLevel: fallback.rawValue, levels: bySource.mapValues(\.rawValue),
                                           maxFiles: logging.file.maxFiles, maxFileSize: logging.file.maxFileSize)
            },
            apply: { settings in
                guard let logging else { return }
                TandemServer.apply(settings ?? TandemServer.configuredDiagnostics(configuration.log), to: logging)
            },
            subsystems: LogLevels.subsystems.map { ($0.source, $0.covers) },
            captureTool: DiagnosticsArchive.captureTool,
            maximumCaptureSeconds: DiagnosticsArchive.maximumCaptureSeconds,
            archive: { seconds in
                try await DiagnosticsArchive.make(context, captureSeconds: seconds, metricsText: String(decoding: metrics.emitToBuffer(), as: UTF8.self))
            })
        let coordinator = context.restart
        let drainTimeout = configuration.cms.drainTimeout
        let restart = RestartBackend(
            status: {
                let phase: String, left: Int?
                switch coordinator.phase {
                case .running: (phase, left) = ("running", nil)
                case .draining(let deadline): (phase, left) = ("draining", max(0, Int(deadline.timeIntervalSinceNow.rounded(.up))))
                case .restarting: (phase, left) = ("restarting", nil)
                }
                return RestartStatus(phase: phase, calls: await controller?.callCount ?? 0, startedAt: ISO8601DateFormatter().string(from: coordinator.startedAt),
                                     drainTimeout: drainTimeout, secondsLeft: left)
            },
            begin: { coordinator.begin(drainTimeout: drainTimeout, controller: controller) })
        let payload = PayloadBackend(configured: { SIPService.configuredPayload(configuration) }, apply: { await sip?.applyPayload($0) })
        return AdminBackend(snapshot: {
            var s = DashboardSnapshot()
            if let extensions = try? await api.extensions() {
                for e in extensions { s.extensionsByState[e.state, default: 0] += 1 }
            }
            if let calls = try? await api.calls() {
                s.calls = calls.map { c in
                    DashboardSnapshot.Call(id: c.call, direction: c.direction, extension: c.extension, remote: c.remote, state: c.state, codec: c.codec, mode: c.mode,
                                           jitterMs: c.jitterMs, lossPercent: c.lossPercent, rttMs: c.rttMs, mos: c.mos)
                }
            }
            if let server = turn?.current {
                s.turnAllocations = server.liveCounts.allocations
                s.turnRelayedBytes = server.relayedBytes
            }
            let process = ProcessFigures.read()
            s.cpuSeconds = process.cpuSeconds
            s.residentBytes = process.residentBytes
            s.uptimeSeconds = Date().timeIntervalSince(started)
            return s
        }, extensionStates: {
            let list = (try? await api.extensions()) ?? []
            return Dictionary(list.map { ($0.extension, $0.state) }, uniquingKeysWith: { a, _ in a })
        }, endSession: { id in
            // The Store removed the session with its extension; this ends its calls and socket.
            _ = try? await api.deleteSession(id)
        }, turn: turnBackend, sip: sipBackend, certificates: certificates, payload: payload, diagnostics: diagnostics, restart: restart)
    }

    /// The certificates page over the live certificate: an upload is checked
    /// (``CertificateUpload``), stored under `<data-directory>/tls/` and presented from the
    /// next handshake; removing it loads the configured or self-signed one again.
    static func certificateBackend(_ context: ServeContext) -> CertificateBackend {
        let live = context.tls
        let settings = context.configuration.tls
        let dataDirectory = context.configuration.storage.dataDirectory
        let directory = URL(fileURLWithPath: dataDirectory).appendingPathComponent("tls").path
        let logger = context.logger
        return CertificateBackend(
            current: {
                let material = live.material
                let source = switch material.source {
                case .uploaded: "uploaded"
                case .configured: "file"
                case .selfSigned: "self-signed"
                }
                guard let leaf = material.certificateChain.first, let status = try? CertificateStatus(leaf, source: source, hostName: settings.effectiveHostName) else {
                    return CertificateStatus(subject: "?", alternativeNames: [], issuer: "?", notValidBefore: .distantPast, notValidAfter: material.notValidAfter,
                                             fingerprint: "", source: source, hostName: settings.effectiveHostName)
                }
                return status
            },
            install: { certificate, key, ca in
                let material: TLSMaterial
                do throws(CertificateUpload.Problem) {
                    material = try CertificateUpload.validate(certificate: certificate, privateKey: key, caCertificates: ca, hostName: settings.effectiveHostName)
                } catch {
                    return (error.field, error.reason)
                }
                do throws(TLSMaterialError) {
                    try CertificateUpload.install(certificate: certificate, privateKey: key, caCertificates: ca, directory: directory)
                } catch {
                    return ("certificate", "it could not be stored: \(error)")
                }
                live.replace(material)
                logger.notice("Presenting the uploaded TLS certificate", metadata: ["not-valid-after": "\(material.notValidAfter)"])
                return nil
            },
            remove: {
                CertificateUpload.remove(directory: directory)
                do throws(TLSMaterialError) {
                    live.replace(try TLSMaterial.load(settings, dataDirectory: dataDirectory, hostname: settings.effectiveHostName, logger: logger))
                    return nil
                } catch {
                    return "the configured certificate cannot be loaded: \(error)"
                }
            })
    }
}
