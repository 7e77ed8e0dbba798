#!/usr/bin/env bash
# Builds the Debian package mailbridge_<version>-<revision>_<arch>.deb from this checkout (after
# `npm ci`) with dpkg-deb, and prints its path.
#
#   scripts/package/deb.sh [--revision N] [--compress xz|gzip|zstd] [OUTDIR]
#
# Contents: /usr/lib/mailbridge as scripts/package/stage.sh lays it out (the npm package with its
# runtime dependencies from package-lock.json, including the Node.js 24 of the `node` package,
# since Debian's nodejs is older), /usr/bin/mailbridge, the systemd unit,
# /etc/mailbridge/mailbridge.yaml (a conffile) and the maintainer scripts of packaging/debian/.
# The architecture is the build machine's: the `node` package fetches the Node.js binary for it.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
revision=1
compress=xz
out=.
while [ $# -gt 0 ]; do
  case "$1" in
    --revision) revision=$2; shift 2 ;;
    --compress) compress=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) out=$1; shift ;;
  esac
done
out=$(realpath "$out")
deb=$repo/packaging/debian
arch=$(dpkg --print-architecture)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

root=$work/root
lib=$root/usr/lib/mailbridge
"$repo/scripts/package/stage.sh" "$lib"
version=$("$lib/node_modules/node/bin/node" -p 'require(process.argv[1]).version' "$lib/package.json")

install -D -m 0755 "$deb/mailbridge.sh" "$root/usr/bin/mailbridge"
install -D -m 0644 "$deb/mailbridge.service" "$root/usr/lib/systemd/system/mailbridge.service"
install -D -m 0644 "$deb/mailbridge.yaml" "$root/etc/mailbridge/mailbridge.yaml"
doc=$root/usr/share/doc/mailbridge
install -D -m 0644 "$repo/README.md" "$doc/README.md"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mailbridge

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.

Files: usr/lib/mailbridge/node_modules/*
License: various
 Each bundled npm package carries its licence in its folder; Node.js's is in
 usr/lib/mailbridge/node_modules/node/node_modules/node-*/LICENSE.
COPYRIGHT
printf 'mailbridge (%s-%s) unstable; urgency=medium\n\n  * Built from the mailbridge repository.\n\n -- mailbridge maintainers <packaging@mailbridge.invalid>  %s\n' \
  "$version" "$revision" "$(date -R)" | gzip -9n >"$doc/changelog.Debian.gz"

mkdir -p "$root/DEBIAN"
install -m 0755 "$deb/postinst" "$deb/prerm" "$deb/postrm" "$root/DEBIAN/"
echo /etc/mailbridge/mailbridge.yaml >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<CONTROL
Package: mailbridge
Version: $version-$revision
Architecture: $arch
Maintainer: mailbridge maintainers <packaging@mailbridge.invalid>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: adduser, libc6 (>= 2.28), util-linux
Section: mail
Priority: optional
Description: gateway to Microsoft 365 and Exchange mail with modern authentication
 mailbridge lets applications that speak plain SMTP and IMAP (scanners, ERP, DMS,
 firewalls) send, fetch and be notified about Microsoft 365 and Exchange mail with
 Entra ID, XOAUTH2, Graph or EWS. It runs as the systemd service mailbridge, with
 its configuration in /etc/mailbridge and its state in /var/lib/mailbridge.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
file=$out/mailbridge_${version}-${revision}_${arch}.deb
dpkg-deb --root-owner-group -Z"$compress" --build "$root" "$file" >/dev/null
echo "$file"
