#!/usr/bin/env bash
# Creates a Python virtual environment for the test peers (when missing) and installs the
# named pip requirements into it (when one does not import).
#   ensure-python-venv.sh DIR MODULE=REQUIREMENT...   e.g. .build-venv aiortc=aiortc==1.14.0
set -euo pipefail
venv="$1"
shift
if [ ! -x "$venv/bin/python" ]; then
    echo "Creating the Python venv $venv"
    python3 -m venv "$venv"
fi
missing=()
for pair in "$@"; do
    module="${pair%%=*}"
    requirement="${pair#*=}"
    if ! "$venv/bin/python" -c "import $module" >/dev/null 2>&1; then
        missing+=("$requirement")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "Python test peers present in $venv"
    exit 0
fi
echo "Installing into $venv: ${missing[*]}"
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet "${missing[@]}"
