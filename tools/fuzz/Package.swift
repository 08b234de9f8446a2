// swift-tools-version: 6.2
// Fuzz targets, built apart from the main package with `-sanitize=fuzzer` (see run.sh).
import PackageDescription

let package = Package(
    name: "TandemFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Tandem", path: "../..")],
    targets: [
        .target(name: "FuzzDriver", swiftSettings: [.swiftLanguageMode(.v6)]),
        .executableTarget(
            name: "STUNFuzzer",
            dependencies: ["FuzzDriver", .product(name: "STUN", package: "Tandem")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "SDPFuzzer",
            dependencies: ["FuzzDriver", .product(name: "SDP", package: "Tandem")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "RTPFuzzer",
            dependencies: ["FuzzDriver", .product(name: "Media", package: "Tandem")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "SIPFuzzer",
            dependencies: ["FuzzDriver", .product(name: "SIP", package: "Tandem")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
        .executableTarget(
            name: "SRTPFuzzer",
            dependencies: ["FuzzDriver", .product(name: "WebRTC", package: "Tandem")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
