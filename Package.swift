// swift-tools-version: 6.2
// Tandem — WebRTC-to-SIP media gateway and TURN relay. Layout: ../shared/DESIGN.md.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Tandem",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tandem", targets: ["Tandem"]),
        .executable(name: "turn-load", targets: ["TURNLoad"]),
        .executable(name: "media-load", targets: ["MediaLoad"]),
        .executable(name: "sip-bench", targets: ["SIPBench"]),
        .executable(name: "sip-peer", targets: ["SIPPeer"]),
        .library(name: "STUN", targets: ["STUN"]),
        .library(name: "TURN", targets: ["TURN"]),
        .library(name: "SDP", targets: ["SDP"]),
        .library(name: "Media", targets: ["Media"]),
        .library(name: "WebRTC", targets: ["WebRTC"]),
        .library(name: "SIP", targets: ["SIP"]),
        .library(name: "SIPUA", targets: ["SIPUA"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0", traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
    ],
    targets: [
        // Linux socket calls Swift cannot reach through Glibc (epoll, eventfd, recvmmsg/sendmmsg).
        .target(name: "CDatapath"),
        // Raw UDP datapath: a one-thread epoll loop, sockets, recvmmsg/sendmmsg batches.
        .target(name: "Datapath", dependencies: ["CDatapath"], swiftSettings: strict),
        // G.711 µ-law/A-law (pure Swift, table-driven).
        .target(name: "G711", path: "codecs/G711", swiftSettings: strict),
        // libopus (Debian's libopus-dev) and wrappers for its variadic ctl calls.
        .target(name: "COpus", path: "codecs/COpus", linkerSettings: [.linkedLibrary("opus")]),
        // Opus encoder/decoder at the narrowband rate (RFC 6716, RFC 7587).
        .target(name: "Opus", dependencies: ["COpus"], path: "codecs/Opus", swiftSettings: strict),
        // SDP parse/serialize (RFC 8866) with typed WebRTC attributes.
        .target(name: "SDP", swiftSettings: strict),
        // SIP (RFC 3261) as values: messages, transaction state machines, digest, registration, back-off.
        // Knows nothing of WebRTC: bodies are opaque bytes with a content type.
        .target(name: "SIP", dependencies: [.product(name: "Crypto", package: "swift-crypto")], path: "sip/SIP", swiftSettings: strict),
        // The SIP stack at run time over SwiftNIO: UDP/TCP/TLS transports, the transaction layer,
        // registration with failover and keep-alives. Still no WebRTC.
        .target(
            name: "SIPUA",
            dependencies: [
                "SIP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            path: "sip/SIPUA",
            swiftSettings: strict
        ),
        // RTP/RTCP (RFC 3550, 4585, 5104), jitter buffer, transcoding pipeline, DTMF, stats.
        .target(name: "Media", dependencies: ["G711", "Opus"], swiftSettings: strict),
        // DTLS 1.2 + use_srtp through Debian's OpenSSL 3, behind an opaque C interface.
        .target(name: "CDTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // libsrtp2 (Debian's libsrtp2-dev).
        .systemLibrary(name: "CSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),
        // The WebRTC leg: ICE-lite, DTLS-SRTP, SRTP, offer/answer.
        .target(
            name: "WebRTC",
            dependencies: ["SDP", "STUN", "CDTLS", "CSRTP", "Datapath"],
            swiftSettings: strict
        ),
        // Calls: the media engine (WebRTC leg + audio bridge + far end), the SIP leg's RTP and
        // SDP, and the back-to-back agent joining browser sessions to SIP calls. The only module
        // that knows both WebRTC and SIP.
        .target(
            name: "Gateway",
            dependencies: [
                "WebRTC", "Media", "SDP", "STUN", "Datapath", "G711", "Opus", "SIP", "SIPUA",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // STUN message codec (RFC 8489/5389/5769), shared by the TURN server and the ICE agent.
        .target(
            name: "STUN",
            dependencies: [
                "Datapath",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "turn/STUN",
            swiftSettings: strict
        ),
        // TURN server (RFC 5766/8656/6156) over SwiftNIO.
        .target(
            name: "TURN",
            dependencies: [
                "STUN", "Datapath",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "turn/TURN",
            swiftSettings: strict
        ),
        // Persistence: SQLite via GRDB, migrations, runtime settings.
        .target(
            name: "Store",
            dependencies: [
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // HTTPS listener: health, readiness, metrics (and later the control API).
        .target(
            name: "ControlAPI",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            ],
            resources: [.copy("openapi.yaml"), .copy("webkit")],
            swiftSettings: strict
        ),
        // The administrators' web configuration under /cms: sign-in, sessions, CSRF, lock-out,
        // the pages. Knows the Store and Hummingbird, not the protocols (TandemKit feeds it).
        .target(
            name: "Admin",
            dependencies: [
                "Store",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Configuration, TLS material, logging, and the wiring of `tandem serve`.
        .target(
            name: "TandemKit",
            dependencies: [
                "STUN", "TURN", "Store", "ControlAPI", "Admin", "Gateway", "Media", "Opus", "G711", "SIP", "SIPUA",
                .product(name: "Configuration", package: "swift-configuration"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "Tandem",
            dependencies: [
                "TandemKit", "Store", "Admin",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // Load generator for tools/bench/turn: faces Tandem and coturn alike.
        .executableTarget(
            name: "TURNLoad",
            dependencies: [
                "STUN", "TURN", "Datapath",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/bench/turn/TURNLoad",
            swiftSettings: strict
        ),
        .testTarget(name: "STUNTests", dependencies: ["STUN"], swiftSettings: strict),
        .testTarget(name: "SIPTests", dependencies: ["SIP", "SIPUA", .product(name: "NIOPosix", package: "swift-nio")], exclude: ["Fixtures"], swiftSettings: strict),
        // Load generator for tools/bench/media (N simulated browsers against the echo service) and
        // tools/bench/calls (N browsers holding sessions over /webkit/ws, answering calls from SIP).
        .executableTarget(
            name: "MediaLoad",
            dependencies: [
                "WebRTC", "SDP", "STUN", "Datapath", "Media", "Opus", "G711",
                .product(name: "WSClient", package: "swift-websocket"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "tools/bench/media/MediaLoad",
            swiftSettings: strict
        ),
        // Parser benchmark for tools/bench/sip.
        .executableTarget(name: "SIPBench", dependencies: ["SIP"], path: "tools/bench/sip/SIPBench", swiftSettings: strict),
        // Tandem's SIP stack as a test peer for tools/interop/sip/run.py (answers with echo, or calls and checks a tone).
        .executableTarget(
            name: "SIPPeer",
            dependencies: [
                "SIP", "SIPUA", "G711",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "tools/interop/sip/SIPPeer",
            swiftSettings: strict
        ),
        .testTarget(name: "SDPTests", dependencies: ["SDP"], exclude: ["Fixtures"], swiftSettings: strict),
        .testTarget(name: "MediaTests", dependencies: ["Media"], swiftSettings: strict),
        .testTarget(name: "GatewayTests", dependencies: ["Gateway", "SDP", "Datapath", "G711", "Media"], swiftSettings: strict),
        .testTarget(name: "WebRTCTests", dependencies: ["WebRTC", "SDP", "STUN"], swiftSettings: strict),
        .testTarget(name: "CodecTests", dependencies: ["G711", "Opus"], swiftSettings: strict),
        .testTarget(name: "DatapathTests", dependencies: ["Datapath"], swiftSettings: strict),
        .testTarget(name: "TURNTests", dependencies: ["TURN", "STUN", "Datapath", .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")], swiftSettings: strict),
        .testTarget(name: "StoreTests", dependencies: ["Store"], swiftSettings: strict),
        .testTarget(
            name: "AdminTests",
            dependencies: [
                "Admin", "Store",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TandemKitTests",
            dependencies: [
                "TandemKit", "Store", "ControlAPI",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "InteropTests", dependencies: ["TandemKit", "STUN"], swiftSettings: strict),
    ]
)
