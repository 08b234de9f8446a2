import Foundation
import Gateway
import Logging
import Synchronization

/// "Restart service": stop taking new sessions and calls, let the calls in progress end (up
/// to the drain timeout), end the rest with BYE, then shut the services down gracefully and
/// start again — `tandem serve` re-executes itself, or, under systemd, exits with 75 for the
/// unit's `Restart=on-failure` to start it.
public final class RestartCoordinator: Sendable {
    public enum Phase: Sendable, Equatable {
        case running
        case draining(deadline: Date)
        case restarting
    }

    /// When this process started serving (a restart shows a new time).
    public let startedAt = Date()
    private let state = Mutex<(phase: Phase, requested: Bool)>((.running, false))
    private let shutdown = Mutex<(@Sendable () -> Void)?>(nil)
    let logger: Logger

    public init(logger: Logger) {
        self.logger = logger
    }

    public var phase: Phase { state.withLock { $0.phase } }
    /// Whether new sessions and calls are refused.
    public var isDraining: Bool { phase != .running }
    /// Whether the process should start again once its services stopped.
    public var isRestartRequested: Bool { state.withLock { $0.requested } }

    /// What stops the service group gracefully (set once the group exists).
    func setShutdown(_ trigger: @escaping @Sendable () -> Void) {
        shutdown.withLock { $0 = trigger }
    }

    /// Starts the restart once (false: one is under way): drains `controller`'s calls for up
    /// to `drainTimeout` seconds, polling every 250 ms, ends what is left, then shuts down.
    @discardableResult
    public func begin(drainTimeout: Int, controller: CallController?) -> Bool {
        let deadline = Date().addingTimeInterval(TimeInterval(drainTimeout))
        let started = state.withLock { s -> Bool in
            guard s.phase == .running else { return false }
            s = (.draining(deadline: deadline), true)
            return true
        }
        guard started else { return false }
        logger.notice("Restart requested: draining calls", metadata: ["drain-timeout-s": "\(drainTimeout)"])
        Task {
            await controller?.startDraining()
            while Date() < deadline, let controller, await controller.callCount > 0 {
                try? await Task.sleep(for: .milliseconds(250))
            }
            let left = await controller?.callCount ?? 0
            if left > 0 {
                logger.notice("Drain timeout passed: ending the calls left with BYE", metadata: ["calls": "\(left)"])
                await controller?.endAllCalls(reason: "Tandem is restarting")
                // Let the BYEs leave before the SIP side stops.
                try? await Task.sleep(for: .milliseconds(500))
            }
            state.withLock { $0.phase = .restarting }
            await controller?.closeAllConnections(code: "restarting", reason: "Tandem is restarting; reconnect in a few seconds")
            logger.notice("Restarting: stopping the services")
            shutdown.withLock { $0 }?()
        }
        return true
    }
}
