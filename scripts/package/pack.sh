#!/usr/bin/env bash
# Builds the npm package, mailbridge-<version>.tgz, into the folder $1 (default: the current one)
# and prints its path. It builds in a copy of the files the package is made of, so dist/ never
# lands in the checkout and builds (the npm and Debian tests, the container) can run side by side.
# Needs `npm ci` in the checkout (scripts/build.ts bundles src/ into dist/ in `npm pack`'s prepack step).
set -euo pipefail
out=$(realpath "${1:-.}")
repo=$(cd "$(dirname "$0")/../.." && pwd)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/scripts" && cp "$repo/scripts/build.ts" "$stage/scripts/"
cp -r "$repo"/{package.json,package-lock.json,tsconfig.json,README.md,LICENSE,bin,src,docs} "$stage"/
ln -s "$repo/node_modules" "$stage/node_modules"
name=$(cd "$stage" && npm pack --silent --pack-destination "$out")
echo "$out/$name"
