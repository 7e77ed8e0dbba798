#!/usr/bin/env bash
# Starts a private sandbox Dovecot under DIR (default tmp/dovecot) that keeps running; prints
# pid=, the ports, the CA file and a 1 h token. Stop it with scripts/dovecot/stop.sh DIR.
# Usage: scripts/dovecot/start.sh [DIR] [--user ADDRESS] [--imap N --imaps N --lmtp N --submission N]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${1:-tmp/dovecot}"
[ $# -gt 0 ] && shift
bash "$root/scripts/dovecot/install.sh" >/dev/null
# Dovecot must not hold this script's stdio (pitfall 3): startDovecot launches it with stdio to a file.
exec "$root/node_modules/.bin/node" "$root/scripts/dovecot/start.ts" --dir "$dir" "$@" </dev/null
