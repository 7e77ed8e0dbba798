#!/usr/bin/env bash
# Installs what the connector benchmarks need, from Debian packages: the sandbox's Dovecot
# (scripts/dovecot/install.sh) and fetchmail, the peer mailbridge is compared with. Idempotent;
# runs apt-get only for what is missing. Never starts the system's fetchmail or Dovecot service.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$root/scripts/dovecot/install.sh"
if ! dpkg-query -W -f='${Status}' fetchmail 2>/dev/null | grep -q 'install ok installed'; then
  as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
  echo "setup.sh: installing fetchmail"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fetchmail </dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fetchmail </dev/null
  fi
fi
echo "setup.sh: $(fetchmail --version 2>/dev/null | grep -m1 'release' || echo 'fetchmail ?') ready"
