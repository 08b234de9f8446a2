import Logging
import ServiceLifecycle
import Store

/// Runs the ``Store`` as the first service of `tandem serve`: it is opened before the
/// group starts and closed when the group has shut everything else down (reverse order).
public struct StoreService: Service, CustomStringConvertible {
    public let store: Store
    let logger: Logger

    public init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public var description: String { "Store" }

    public func run() async throws {
        // Returns on graceful shutdown, and throws CancellationError on cancellation; close either way.
        try? await gracefulShutdown()
        do {
            try store.close()
        } catch {
            logger.error("Closing the database failed", metadata: ["error": "\(error)"])
        }
    }
}
