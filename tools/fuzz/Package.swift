// swift-tools-version: 6.2
// Fuzz targets, built apart from the main package with `-sanitize=fuzzer` (see run.sh).
import PackageDescription

let package = Package(
    name: "TandemFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "Tandem", path: "../..")],
    targets: [
        .executableTarget(
            name: "STUNFuzzer",
            dependencies: [.product(name: "STUN", package: "Tandem")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
