#!/usr/bin/env bash
# Test prerequisites from Debian: chromium for the browser tests (never a downloaded browser build) and
# cpio, the independent reader the harness tests check their appended initramfs archives with.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
command -v chromium
