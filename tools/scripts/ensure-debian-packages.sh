#!/usr/bin/env bash
# Installs the named Debian packages that are missing, with apt-get.
# Runs `apt-get update` once, and only when something is missing (a new machine has
# empty package lists). Uses sudo when not root. Usage: ensure-debian-packages.sh PKG...
set -euo pipefail

missing=()
for package in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$package")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "Debian packages present: $*"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "error: missing Debian packages (${missing[*]}) and not root; install them or run as root" >&2
    exit 1
fi

echo "Installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
