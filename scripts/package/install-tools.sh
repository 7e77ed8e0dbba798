#!/usr/bin/env bash
# Installs what the packaging tests (test/packaging/) need, from Debian packages: dpkg-dev's
# dpkg-deb comes with dpkg; systemd for `systemd-analyze verify` (no systemd runs as PID 1 on
# the CI machines, the package only brings the tools); mmdebstrap and podman (with its
# recommended buildah, crun, fuse-overlayfs) to build and mount the container image.
# Idempotent: does nothing when all is present, runs `apt-get update` only when an install from
# the current package lists fails. Needs root (or sudo) only in that case.
set -euo pipefail

packages=(dpkg systemd mmdebstrap podman util-linux)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ "${#missing[@]}" -eq 0 ] && exit 0

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo "$@"; else
    echo "install-tools.sh: need root to run: $*" >&2; exit 1
  fi
}
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-tools.sh: missing ${missing[*]} and no apt-get on this machine (Debian/Ubuntu expected)" >&2
  exit 1
fi
echo "install-tools.sh: installing ${missing[*]}"
apt() { as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 "$@" </dev/null; }
if ! apt install -y "${missing[@]}"; then
  apt update
  apt install -y "${missing[@]}"
fi
