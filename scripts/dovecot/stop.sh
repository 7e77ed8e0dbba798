#!/usr/bin/env bash
# Stops the sandbox Dovecot started by start.sh from DIR (default tmp/dovecot): SIGTERM to the PID
# in DIR/run/master.pid, wait up to 10 s for it to exit, then SIGKILL. Exits 0 if none was running.
set -euo pipefail
dir="${1:-tmp/dovecot}"
pidfile="$dir/run/master.pid"
if [ ! -f "$pidfile" ]; then echo "stop.sh: no Dovecot running from $dir"; exit 0; fi
pid="$(cat "$pidfile")"
gone() { ! kill -0 "$pid" 2>/dev/null || grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null; }
if gone; then echo "stop.sh: Dovecot $pid from $dir is not running"; rm -f "$pidfile"; exit 0; fi
kill -TERM "$pid"
for _ in $(seq 1 200); do gone && break; sleep 0.05; done
if ! gone; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
rm -f "$pidfile"
echo "stop.sh: stopped Dovecot $pid"
