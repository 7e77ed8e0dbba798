#!/usr/bin/env bash
# Installs Debian's Chromium for the web console's browser tests (test/console/, driven by
# playwright-core with executablePath /usr/bin/chromium: playwright's own browser download cannot
# run where only Debian's and npm's registries are reachable). Idempotent: does nothing when it is
# present, runs `apt-get update` only when an install from the current lists fails.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "install.sh: need root to run: $*" >&2; exit 1
  fi
}

if [ ! -x /usr/bin/chromium ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: Chromium is missing and there is no apt-get on this machine (Debian/Ubuntu expected)" >&2
    exit 1
  fi
  echo "install.sh: installing chromium"
  # fonts-dejavu-core: the screenshots and the layout checks need a real font, not the fallback boxes.
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core </dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium fonts-dejavu-core </dev/null
  fi
fi

echo "install.sh: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium (version unknown)') ready"
