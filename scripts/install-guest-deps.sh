#!/usr/bin/env bash
# Installs the Debian packages guest/build.sh needs (bookworm). Idempotent: does nothing
# when everything is already installed. Needs root (or sudo) only when something is missing.
set -euo pipefail

PKGS=(
  linux-source-6.12   # kernel source tarball (fallback: linux-source-6.1)
  busybox-static      # host busybox (applet list); the guest one is busybox-static:i386
  seabios             # bios.bin + vgabios-stdvga.bin
  gcc gcc-multilib make bc flex bison libelf-dev libssl-dev  # kernel + guest programs (-m32 -static)
  cpio xz-utils lz4   # tarball extraction, KERNEL_LZ4
  nodejs              # manifest.json writer (any node >= 18)
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
done
# the guest busybox is an i386 package: apt must know the i386 architecture
need_i386=0
dpkg --print-foreign-architectures | grep -qx i386 || need_i386=1

if [ ${#missing[@]} -eq 0 ] && [ $need_i386 -eq 0 ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ $need_i386 -eq 1 ]; then
  echo "install-guest-deps: adding dpkg architecture i386" >&2
  $SUDO dpkg --add-architecture i386
fi
echo "install-guest-deps: installing ${missing[*]:-(nothing, refreshing lists)}" >&2
$SUDO apt-get update
[ ${#missing[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
