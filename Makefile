# Tandem — the two commands of README.md, for a fresh Debian 12 machine with Swift.
#   make run    build (release) and run `tandem serve` with config/tandem.yaml and the demo (http.demo) on
#   make test   build and run every test: short fuzz runs of the STUN, SDP, RTP/RTCP and SIP parsers and SRTP,
#               unit tests, the interop tests against coturn's clients and Kamailio, the WebRTC
#               end-to-end tests (aiortc and headless Chromium against the echo service), and the
#               gateway's end-to-end tests (Chromium on the agent page bridged to sipp through Kamailio), and
#               the /cms pages in Chromium (sign-in, lock-out, allowed networks)

SHELL := /bin/bash

# C libraries the build links (SQLite for the Store; OpenSSL, libsrtp2, Opus and VP8 for media).
BUILD_PACKAGES := libsqlite3-dev libssl-dev libsrtp2-dev libopus-dev libvpx-dev
# Peers and tools the tests start themselves (coturn for TURN interop, Kamailio, sipp, baresip and
# tshark for SIP interop, iproute2 for namespaces,
# Chromium and its driver for the browser tests, python3-venv for the aiortc peer).
TEST_PACKAGES := $(BUILD_PACKAGES) coturn kamailio sip-tester baresip-core tshark iproute2 chromium chromium-driver python3-venv
# Python test peers and checkers, pip-installed into a venv under the build directory: module=requirement.
VENV := .build-venv
PYTHON_PEERS := aiortc=aiortc==1.16.0 selenium=selenium==4.50.0 numpy=numpy==2.4.6 openapi_spec_validator=openapi-spec-validator==0.7.1 schemathesis=schemathesis==4.32.5

CONFIG ?= config/tandem.yaml

.PHONY: run test

run:
	tools/scripts/ensure-debian-packages.sh $(BUILD_PACKAGES)
	swift build -c release --product tandem
	exec env TANDEM_HTTP_DEMO=true .build/release/tandem serve --config $(CONFIG)

test:
	tools/scripts/ensure-debian-packages.sh $(TEST_PACKAGES)
	tools/scripts/ensure-python-venv.sh $(VENV) $(PYTHON_PEERS)
	$(VENV)/bin/openapi-spec-validator Sources/ControlAPI/openapi.yaml
	FUZZ_SECONDS=15 tools/fuzz/run.sh --smoke
	swift build --build-tests
	TANDEM_INTEROP=required swift test
	swift build --product tandem
	swift build --product sip-peer
	python3 tools/interop/sip/run.py --tandem .build/debug/tandem --peer .build/debug/sip-peer
	python3 tools/interop/webrtc/run.py --tandem .build/debug/tandem --python $(VENV)/bin/python
	$(VENV)/bin/python tools/interop/gateway/run.py --tandem .build/debug/tandem
	$(VENV)/bin/python tools/interop/cms/run.py --tandem .build/debug/tandem
	python3 tools/interop/api/run.py --tandem .build/debug/tandem --schemathesis $(VENV)/bin/schemathesis
