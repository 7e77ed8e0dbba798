#!/usr/bin/env bash
# Installs Debian's PostgreSQL server for the store tests and the cluster benchmark. Idempotent:
# does nothing when it is present, runs `apt-get update` only when an install from the current
# lists fails. It never starts, enables or configures the system's cluster: tests run private
# instances (test/support/postgres.ts) under a temp dir, as the `postgres` user, on a Unix socket.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "install.sh: need root to run: $*" >&2; exit 1
  fi
}

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

if [ -z "$(bindir)" ] || [ ! -x "$(bindir)/initdb" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: PostgreSQL is missing and there is no apt-get on this machine (Debian/Ubuntu expected)" >&2
    exit 1
  fi
  echo "install.sh: installing postgresql"
  # policy-rc.d keeps the package from starting the system cluster on machines without systemd.
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql </dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql </dev/null
  fi
fi

id postgres >/dev/null 2>&1 || { echo "install.sh: the postgresql package did not create the postgres user" >&2; exit 1; }
echo "install.sh: $("$(bindir)/postgres" --version), user postgres ($(id -u postgres)) ready"
