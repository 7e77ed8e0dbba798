#!/usr/bin/env bash
# Installs what the sandbox's real Dovecot needs, from Debian packages: dovecot-imapd,
# dovecot-lmtpd, dovecot-submissiond, dovecot-sieve (Pigeonhole: the Sieve recipe that drops the
# connector's redeliveries, share/sieve/) (dovecot-core comes with them) and openssl, and creates the
# `vmail` system user that owns the test mailboxes. Idempotent: does nothing when all is present,
# runs `apt-get update` only when a package is missing. Needs root (or sudo) only in that case.
# It never starts, enables or configures the system's Dovecot: the sandbox runs private instances
# (src/sandbox/dovecot.ts) with their own config under a temp dir.
set -euo pipefail

packages=(dovecot-imapd dovecot-lmtpd dovecot-submissiond dovecot-sieve openssl)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "install.sh: need root to run: $*" >&2; exit 1
  fi
}

if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: missing ${missing[*]} and no apt-get on this machine (Debian/Ubuntu expected)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "install.sh: installing ${missing[*]}"
  # Update the package lists only when an install from the current lists fails (e.g. a fresh
  # container with empty lists), so repeated runs stay offline.
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" </dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
  fi
fi

if ! id vmail >/dev/null 2>&1; then
  echo "install.sh: creating system user vmail"
  as_root useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vmail
fi

dovecot --version >/dev/null
echo "install.sh: dovecot $(dovecot --version | cut -d' ' -f1), openssl $(openssl version | cut -d' ' -f2), user vmail ($(id -u vmail):$(id -g vmail)) ready"
