import Gateway
import Logging
import Opus
import ServiceLifecycle

/// The media engine as a service of `tandem serve`: it runs until graceful shutdown, then
/// ends every call (releasing sockets, DTLS and SRTP contexts) and stops its threads.
struct MediaService: Service {
    let engine: MediaEngine
    let logger: Logger

    func run() async throws {
        engine.start()
        try? await gracefulShutdown()
        await engine.shutdown()
        logger.info("media engine stopped")
    }
}

/// Closes every browser's signalling socket when a shutdown begins (with the reason), so
/// HTTPS does not wait for them, and refuses the sockets browsers open again meanwhile.
struct SignallingCloser: Service {
    let controller: CallController

    func run() async throws {
        try? await gracefulShutdown()
        await controller.closeAllConnections(code: "shutting-down", reason: "Tandem is stopping or restarting; reconnect in a few seconds")
    }
}

extension TandemConfiguration.Media {
    /// The engine's settings: advertised addresses default to the bind address, or to the
    /// host's own when binding to every address.
    func engineConfiguration(logger: Logger?) -> MediaConfiguration {
        var c = MediaConfiguration()
        c.bindAddress = bindAddress.description
        if !advertisedAddresses.isEmpty {
            c.advertisedAddresses = advertisedAddresses.map(\.description)
        } else if bindAddress.isUnspecified {
            c.advertisedAddresses = HostAddresses.relayCandidates(logger: logger).filter { $0.family == bindAddress.family }.map(\.description)
        } else {
            c.advertisedAddresses = [bindAddress.description]
        }
        c.portRange = UInt16(portRange.lowerBound)...UInt16(portRange.upperBound)
        c.sharedPort = UInt16(sharedPort)
        c.threads = threads
        c.batchWindowMicroseconds = batchWindowMicroseconds
        // FEC stays available; the loss it is planned for starts at 0 and follows the browser's reports.
        c.opus = OpusEncoder.Configuration(bitrate: Int32(opusBitrate), complexity: Int32(opusComplexity), expectedLossPercent: 0)
        c.governor = opusGovernor
        c.sipLaw = sipCodec == "pcma" ? .pcma : .pcmu
        c.preferPassThrough = preferPassThrough
        c.consentTimeoutSeconds = consentTimeout
        return c
    }
}
