#!/usr/bin/env bash
# Starts `npm start` (the gateway on the embedded SQLite default) on a fresh checkout, checks
# /health, and stops it. Used by CI to keep the README's main-job command true.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
# npm does not pass SIGTERM on to the node it started: run it in its own process group and stop the
# whole group, so no gateway outlives the check.
trap 'kill -- -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
MAILBRIDGE__SERVER__PORT=0 MAILBRIDGE__STORE__PATH="$work/mb.db" setsid npm start --silent >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 1 100); do
  url=$(grep -oE 'http://[^ ]+/health' "$work/out" || true)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { echo "serve did not start:"; cat "$work/out" "$work/err"; exit 1; }
body=$(node -e "fetch(process.argv[1]).then(r=>r.text()).then(t=>{console.log(t)})" "$url")
echo "GET $url -> $body"
echo "$body" | grep -q '"status":"ok"'
echo "smoke: npm start serves /health"
