#!/usr/bin/env bash
# guest/qemu-run.sh: the same guest images as v86 uses, in QEMU (TCG, Pentium III) with
# QEMU's virtio-balloon-pci as the reference device. Serial console on stdio.
#
#   guest/qemu-run.sh [-m MiB] [-a "extra kernel args"] [-s monitor.sock] [-D] [-- qemu args...]
#     -m MiB      guest RAM (default 256; keep <= ~890, the kernel has no HIGHMEM)
#     -a ARGS     appended to the manifest's default cmdline (e.g. "init_on_free=1 v86test=/bin/x")
#     -s PATH     HMP monitor on a unix socket (e.g. `echo "balloon 128" | socat - UNIX:PATH`
#                 or `nc -U PATH`); without -s the monitor is muxed on stdio (Ctrl-A c)
#     -D          deflate-on-oom=off (with it on, inflating lowers MemFree but not MemTotal)
#     -P          free-page-reporting=off
# Environment: GUEST_DIR (default public/guest), QEMU (default qemu-system-i386).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${GUEST_DIR:-$(dirname "$HERE")/public/guest}
MEM=256 EXTRA="" MON="" DOOM=on FPR=on
while getopts "m:a:s:DPh" o; do
  case $o in
    m) MEM=$OPTARG ;; a) EXTRA=$OPTARG ;; s) MON=$OPTARG ;; D) DOOM=off ;; P) FPR=off ;;
    *) sed -n '2,15p' "$0"; exit 1 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift

CMDLINE=$(sed -n 's/^  "cmdline": "\(.*\)",$/\1/p' "$DIR/manifest.json")
[ -n "$CMDLINE" ] || CMDLINE="console=ttyS0"
# lpj= is calibrated for v86; QEMU gets its own calibration
CMDLINE=$(echo "$CMDLINE" | sed 's/\blpj=[0-9]*//')

mon=()
if [ -n "$MON" ]; then
  rm -f "$MON"
  mon=(-monitor "unix:$MON,server=on,wait=off" -serial stdio -display none)
else
  mon=(-nographic)
fi

exec "${QEMU:-qemu-system-i386}" -accel tcg -cpu pentium3 -m "$MEM" -no-reboot \
  -kernel "$DIR/bzImage.bin" -initrd "$DIR/initramfs.cpio" -append "$CMDLINE $EXTRA" \
  "${mon[@]}" \
  -device "virtio-balloon-pci,disable-legacy=on,deflate-on-oom=$DOOM,free-page-reporting=$FPR" \
  "$@"
