#!/usr/bin/env bash
# Lays out mailbridge as it runs from /usr/lib/mailbridge in the Debian package and the container
# image, in the folder $1: the npm package (scripts/package/pack.sh), its runtime dependencies
# exactly as package-lock.json locks them (with the Node.js 24 of the `node` package in
# node_modules/node/bin/node), and libexec/ready.mjs (readiness and health check).
# Needs `npm ci` in the checkout (to compile) and the npm registry or a warm npm cache.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
dest=$1
mkdir -p "$dest"
dest=$(realpath "$dest")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tgz=$("$repo/scripts/package/pack.sh" "$work")
tar -xzf "$tgz" -C "$dest" --strip-components=1 --no-same-owner
cp "$repo/package-lock.json" "$dest/"
# The `node` package's install script (allowed in package.json's allowScripts) fetches Node.js 24.
(cd "$dest" && npm ci --omit=dev --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
bundled=$dest/node_modules/node/bin/node
case "$("$bundled" --version)" in v24.*) ;; *) echo "stage.sh: $bundled is not Node.js 24" >&2; exit 1 ;; esac
# Node's C headers and docs are not needed to run it (67 MB).
rm -rf "$dest"/node_modules/node/node_modules/node-*/{include,share,CHANGELOG.md}
install -D -m 0644 "$repo/packaging/libexec/ready.mjs" "$dest/libexec/ready.mjs"
