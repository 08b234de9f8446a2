#!/usr/bin/env python3
"""The live control API checked against its OpenAPI document (Sources/ControlAPI/openapi.yaml)
with schemathesis: `tandem serve` in a network namespace with only `lo`, an OAuth token by
client credentials, then property-based requests to every operation; every response must
conform to the document (status codes, content types, bodies) and none may be a 5xx.

  run.py --tandem .build/debug/tandem --schemathesis .build-venv/bin/schemathesis
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..")
_spec = importlib.util.spec_from_file_location("sip_interop", os.path.join(HERE, "..", "sip", "run.py"))
sip = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sip)


def inner(args):
    workdir = tempfile.mkdtemp(prefix="tandem-api-")
    tandem = sip.Tandem(args.tandem, workdir, "udp", secondary=False)
    tandem.env.update({"TANDEM_SIP_PLATFORM_PRIMARY": "", "TANDEM_MEDIA_ENABLED": "false", "TANDEM_TURN_ENABLED": "true",
                       "TANDEM_TURN_LISTEN_ADDRESSES": "127.0.0.1", "TANDEM_TURN_RELAY_ADDRESSES": "127.0.0.1"})
    try:
        tandem.cli("extensions", "add", "3000-3049")
        tandem.cli("services", "add", "support", "2000")
        tandem.start()
        token = tandem.token()
        out = subprocess.run([args.schemathesis, "--config-file", os.path.join(HERE, "schemathesis.toml"), "run", os.path.join(ROOT, "Sources", "ControlAPI", "openapi.yaml"), "--url", "https://127.0.0.1:7443",
                              "-H", f"Authorization: Bearer {token}", "--tls-verify", "false", "--max-examples", str(args.examples),
                              "--checks", "all", "--exclude-checks", "ignored_auth,positive_data_acceptance", "--request-timeout", "5", "--no-color"],
                             cwd=workdir, capture_output=True, text=True, timeout=600)
        print(out.stdout[-30000:])
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            print("--- tandem (tail) ---\n" + tandem.log()[-3000:], file=sys.stderr)
            print("FAIL the live API does not match its OpenAPI document")
            return 1
        print("ok   the live API matches its OpenAPI document")
        return 0
    finally:
        tandem.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tandem", required=True)
    p.add_argument("--schemathesis", required=True)
    p.add_argument("--examples", type=int, default=25)
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    a.tandem = os.path.abspath(a.tandem)
    a.schemathesis = os.path.abspath(a.schemathesis)
    sip.main_in_namespace("tandem-api", __file__, a, ["--tandem", a.tandem, "--schemathesis", a.schemathesis, "--examples", str(a.examples)], inner)


if __name__ == "__main__":
    main()
