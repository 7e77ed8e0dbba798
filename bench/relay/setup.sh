#!/usr/bin/env bash
# Installs what the relay benchmark needs, from Debian packages: the sandbox's Dovecot
# (scripts/dovecot/install.sh) and Postfix, the peer mailbridge is compared with. Idempotent; runs
# apt-get only for what is missing. Postfix is preseeded as "No configuration" so the package sets
# up nothing of its own; the benchmark runs a private Postfix instance with its own config and
# queue directories (bench/relay/postfix.ts) and never starts or changes the system's service.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
bash "$root/scripts/dovecot/install.sh"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'install ok installed'; then
  echo "setup.sh: installing postfix"
  echo 'postfix postfix/main_mailer_type select No configuration' | as_root debconf-set-selections
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix </dev/null; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postfix </dev/null
  fi
fi
echo "setup.sh: postfix $(/usr/sbin/postconf -d -h mail_version 2>/dev/null || echo '?') ready"
