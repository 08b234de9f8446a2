# Tandem — the two commands of README.md, for a fresh Debian 12 machine with Swift.
#   make run    build (release) and run `tandem serve` with config/tandem.yaml
#   make test   build and run every test: a short fuzz run of the STUN parser, unit tests,
#               and the interop tests against coturn's clients

SHELL := /bin/bash

# C libraries the build links (SQLite for the Store; OpenSSL, libsrtp2, Opus and VP8 for media).
BUILD_PACKAGES := libsqlite3-dev libssl-dev libsrtp2-dev libopus-dev libvpx-dev
# Peers and tools the tests start themselves (coturn for TURN interop, iproute2 for namespaces).
TEST_PACKAGES := $(BUILD_PACKAGES) coturn iproute2

CONFIG ?= config/tandem.yaml

.PHONY: run test

run:
	tools/scripts/ensure-debian-packages.sh $(BUILD_PACKAGES)
	swift build -c release --product tandem
	exec .build/release/tandem serve --config $(CONFIG)

test:
	tools/scripts/ensure-debian-packages.sh $(TEST_PACKAGES)
	FUZZ_SECONDS=20 tools/fuzz/run.sh --smoke
	swift build --build-tests
	TANDEM_INTEROP=required swift test
