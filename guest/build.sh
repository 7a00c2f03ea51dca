#!/usr/bin/env bash
# guest/build.sh: builds the Linux i386 guest for v86 from Debian packages only.
#
#   kernel    /usr/src/linux-source-6.12.tar.xz (fallback 6.1) + guest/patches/*.patch,
#             tinyconfig + guest/kernel.config  -> public/guest/bzImage (LZ4)
#   initramfs busybox-static:i386 + guest/programs/*.c (gcc -m32 -static) + guest/initramfs/*
#             -> public/guest/initramfs.cpio (uncompressed newc, reproducible)
#   firmware  seabios: bios.bin, vgabios-stdvga.bin -> public/guest/{bios,vgabios}.bin
#   manifest  public/guest/manifest.json
#
# Environment: JOBS (default 2), GUEST_BUILD_DIR (default guest/.build), GUEST_OUT_DIR
# (default public/guest), SOURCE_DATE_EPOCH
# (default: fixed below), SKIP_DEPS=1 (do not call scripts/install-guest-deps.sh).
#
# GUEST_VARIANT=modular: the same source and fragment with the virtio transport and the balloon
# driver as loadable modules (as distributions ship them), IKCONFIG in the image, no initramfs:
#   -> guest/.build-modular/out/{bzImage,config,modules/*.ko}
# It is what the harness's --modules and pre-flight checks are tested against (a small copy is
# committed as test/fixtures/modular-kernel/).
set -euo pipefail

T0=$(date +%s)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
VARIANT=${GUEST_VARIANT:-default}
JOBS=${JOBS:-2}
FRAG=$HERE/kernel.config
case "$VARIANT" in
  default)
    BUILD=${GUEST_BUILD_DIR:-$HERE/.build}
    OUT=${GUEST_OUT_DIR:-$ROOT/public/guest} ;;
  modular)
    BUILD=${GUEST_BUILD_DIR:-$HERE/.build-modular}
    OUT=${GUEST_OUT_DIR:-$BUILD/out}
    mkdir -p "$BUILD"
    # virtio core, ring, PCI transport and balloon become =m (VIRTIO follows VIRTIO_PCI)
    sed -e 's/^CONFIG_VIRTIO_PCI=y$/CONFIG_VIRTIO_PCI=m/' \
        -e 's/^CONFIG_VIRTIO_BALLOON=y$/CONFIG_VIRTIO_BALLOON=m/' \
        -e 's/^# CONFIG_MODULES is not set$/CONFIG_MODULES=y/' "$HERE/kernel.config" > "$BUILD/kernel.config"
    printf '%s\n' CONFIG_MODULE_UNLOAD=y CONFIG_IKCONFIG=y CONFIG_IKCONFIG_PROC=y CONFIG_MAGIC_SYSRQ=y >> "$BUILD/kernel.config"
    FRAG=$BUILD/kernel.config ;;
  *) printf '[guest] ERROR: GUEST_VARIANT=%s: expected default or modular\n' "$VARIANT" >&2; exit 1 ;;
esac

# Default kernel command line written to the manifest (the page/harness may append to it).
CMDLINE_DEFAULT="console=ttyS0 tsc=reliable mitigations=off"

# Reproducibility: fixed time/user/host for the kernel banner and cpio mtimes.
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1735689600}   # 2025-01-01T00:00:00Z
export KBUILD_BUILD_TIMESTAMP
KBUILD_BUILD_TIMESTAMP=$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH")
export KBUILD_BUILD_USER=v86 KBUILD_BUILD_HOST=v86-balloon KBUILD_BUILD_VERSION=1
export LC_ALL=C TZ=UTC

log() { printf '\033[1m[guest] %s\033[0m\n' "$*" >&2; }
die() { printf '[guest] ERROR: %s\n' "$*" >&2; exit 1; }

[ "${SKIP_DEPS:-0}" = 1 ] || bash "$ROOT/scripts/install-guest-deps.sh"

mkdir -p "$BUILD" "$OUT"

# ---------------------------------------------------------------- kernel source + patches
KSRC_PKG=""
for v in 6.12 6.1; do
  if [ -f "/usr/src/linux-source-$v.tar.xz" ]; then KSRC_PKG=linux-source-$v; break; fi
done
[ -n "$KSRC_PKG" ] || die "no /usr/src/linux-source-{6.12,6.1}.tar.xz (apt-get install linux-source-6.12)"
TARBALL=/usr/src/$KSRC_PKG.tar.xz
KDIR=$BUILD/$KSRC_PKG

shopt -s nullglob
PATCHES=()
for p in "$HERE"/patches/*.patch; do
  # 0000-cover-letter.patch is the series' cover letter (git format-patch): text, no diff.
  case $(basename "$p") in 0000-*) ;; *) PATCHES+=("$p") ;; esac
done
PROGRAMS=("$HERE"/programs/*.c)
shopt -u nullglob

# The tree is re-extracted whenever the tarball or the patch set changes.
stamp=$( { dpkg-query -W -f='${Version}' "$KSRC_PKG"; echo; for p in "${PATCHES[@]}"; do sha256sum "$p"; done; } | sha256sum | cut -d' ' -f1)
if [ "$(cat "$KDIR/.v86-stamp" 2>/dev/null)" != "$stamp" ]; then
  log "extracting $TARBALL"
  rm -rf "$KDIR"
  tar -C "$BUILD" -xJf "$TARBALL"
  [ -d "$KDIR" ] || die "tarball did not contain $KSRC_PKG/"
  for p in "${PATCHES[@]}"; do
    log "applying patches/$(basename "$p")"
    patch -d "$KDIR" -p1 --forward --no-backup-if-mismatch -s < "$p" || die "patch $(basename "$p") failed"
  done
  echo "$stamp" > "$KDIR/.v86-stamp"
else
  log "kernel tree up to date ($KDIR, ${#PATCHES[@]} patch(es))"
fi

# ---------------------------------------------------------------- kernel config
# LOCALVERSION= (set, empty): the release stays "6.12.117" even when $KDIR is a git tree (setlocalversion
# would append "+"), so the image does not depend on how the source tree was prepared.
KMAKE=(make -C "$KDIR" ARCH=i386 -j"$JOBS" LOCALVERSION=)
log "tinyconfig + kernel.config"
"${KMAKE[@]}" -s tinyconfig
(cd "$KDIR" && ARCH=i386 scripts/kconfig/merge_config.sh -m -O "$KDIR" .config "$FRAG" > "$BUILD/merge_config.log" 2>&1) \
  || { cat "$BUILD/merge_config.log"; die "merge_config.sh failed"; }
"${KMAKE[@]}" -s olddefconfig

missing=()
while IFS= read -r line; do
  case "$line" in
    CONFIG_*=*)
      grep -qxF "$line" "$KDIR/.config" || missing+=("$line (got: $(grep -E "^(# )?${line%%=*}[= ]" "$KDIR/.config" || echo 'absent'))") ;;
    "# CONFIG_"*" is not set")
      sym=${line#\# }; sym=${sym%% *}
      ! grep -qE "^$sym=" "$KDIR/.config" || missing+=("$line (got: $(grep -E "^$sym=" "$KDIR/.config"))") ;;
  esac
done < "$FRAG"
if [ ${#missing[@]} -gt 0 ]; then
  printf '[guest] ERROR: kernel.config lines not honoured by Kconfig (dependency missing?):\n' >&2
  printf '    %s\n' "${missing[@]}" >&2
  exit 1
fi
log "all $(grep -cE '^(CONFIG_|# CONFIG_.* is not set)' "$FRAG") fragment lines verified"

# ---------------------------------------------------------------- kernel build
log "building bzImage (make -j$JOBS)"
TK0=$(date +%s)
"${KMAKE[@]}" bzImage > "$BUILD/kernel-build.log" 2>&1 || { tail -40 "$BUILD/kernel-build.log"; die "kernel build failed (log: $BUILD/kernel-build.log)"; }
KBUILD_SECS=$(( $(date +%s) - TK0 ))
# The build must have used this .config: a stale include/config/auto.conf once gave a tinyconfig kernel.
for sym in $(grep -oE '^CONFIG_[A-Z0-9_]+=y' "$FRAG"); do
  grep -qxF "$sym" "$KDIR/include/config/auto.conf" || die "the kernel was built without $sym (stale include/config/auto.conf?)"
done
KREL=$(cat "$KDIR/include/config/kernel.release")
KUTS=$(sed -n 's/^#define UTS_VERSION "\(.*\)"/\1/p' "$KDIR/include/generated/utsversion.h" 2>/dev/null || true)
log "kernel $KREL built in ${KBUILD_SECS}s"

if [ "$VARIANT" = modular ]; then
  "${KMAKE[@]}" modules >> "$BUILD/kernel-build.log" 2>&1 || { tail -40 "$BUILD/kernel-build.log"; die "modules build failed"; }
  rm -rf "$OUT" && mkdir -p "$OUT/modules"
  cp "$KDIR/arch/x86/boot/bzImage" "$OUT/bzImage"
  cp "$KDIR/.config" "$OUT/config"
  (cd "$KDIR" && find . -name '*.ko' | sort) | while read -r ko; do
    strip --strip-debug -o "$OUT/modules/$(basename "$ko")" "$KDIR/$ko"
  done
  log "modular kernel $KREL in $OUT: $(cd "$OUT/modules" && echo *.ko)"
  exit 0
fi

# ---------------------------------------------------------------- busybox (i386)
BB_DEBDIR=$BUILD/debs
mkdir -p "$BB_DEBDIR"
BB_VER=$(apt-cache policy busybox-static:i386 | sed -n 's/^  Candidate: //p')
[ -n "$BB_VER" ] && [ "$BB_VER" != "(none)" ] || die "busybox-static:i386 unknown to apt (dpkg --add-architecture i386 && apt-get update)"
BB_DEB=$(ls "$BB_DEBDIR"/busybox-static_*_i386.deb 2>/dev/null | head -1 || true)
if [ -z "$BB_DEB" ] || [ "$(dpkg-deb -f "$BB_DEB" Version)" != "$BB_VER" ]; then
  log "apt-get download busybox-static:i386=$BB_VER"
  rm -f "$BB_DEBDIR"/busybox-static_*_i386.deb
  (cd "$BB_DEBDIR" && apt-get -o APT::Sandbox::User=root download "busybox-static:i386=$BB_VER")
  BB_DEB=$(ls "$BB_DEBDIR"/busybox-static_*_i386.deb | head -1)
fi
BB_VER=$(dpkg-deb -f "$BB_DEB" Version)
rm -rf "$BUILD/busybox-i386" && dpkg-deb -x "$BB_DEB" "$BUILD/busybox-i386"
BB=$BUILD/busybox-i386/bin/busybox
file -b "$BB" | grep -q 'Intel 80386' || die "$BB is not an i386 binary"

# Applet list: run the i386 binary if the host can, else the host's busybox of the same version.
if APPLETS=$("$BB" --list-full 2>/dev/null) && [ -n "$APPLETS" ]; then :
elif [ "$(dpkg-query -W -f='${Version}' busybox-static 2>/dev/null)" = "$BB_VER" ]; then
  APPLETS=$(/bin/busybox --list-full)
else
  die "cannot list busybox applets (host cannot run i386 and host busybox-static differs)"
fi

applet_path() { awk -F/ -v a="$1" '$NF == a { print; exit }' <<< "$APPLETS"; }
mapfile -t WANT_APPLETS < <(sed 's/#.*//' "$HERE/initramfs-applets.txt" | tr -s ' \t' '\n\n' | grep -v '^$' | sort -u)
bad=()
for a in "${WANT_APPLETS[@]}"; do
  [ -n "$(applet_path "$a")" ] || bad+=("$a")
done
[ ${#bad[@]} -eq 0 ] || die "initramfs-applets.txt: not in this busybox: ${bad[*]}"

# ---------------------------------------------------------------- guest programs
PROGDIR=$BUILD/programs
rm -rf "$PROGDIR" && mkdir -p "$PROGDIR"
for c in "${PROGRAMS[@]}"; do
  n=$(basename "$c" .c)
  log "gcc -m32 -march=i686 -static -O2 programs/$n.c"
  gcc -m32 -march=i686 -static -O2 -s -Wall -Wextra -ffile-prefix-map="$HERE"=. \
      -Wl,--build-id=none -o "$PROGDIR/$n" "$c" || die "compiling $c failed"
done

# ---------------------------------------------------------------- initramfs (gen_init_cpio)
GEN=$BUILD/gen_init_cpio
gcc -O2 -o "$GEN" "$KDIR/usr/gen_init_cpio.c"
LIST=$BUILD/initramfs.list
{
  printf 'dir /%s 0755 0 0\n' bin sbin usr usr/bin usr/sbin dev proc sys tmp root etc mnt
  printf 'nod /dev/console 0600 0 0 c 5 1\n'
  printf 'nod /dev/ttyS0 0660 0 0 c 4 64\n'
  printf 'nod /dev/null 0666 0 0 c 1 3\n'
  printf 'file /bin/busybox %s 0755 0 0\n' "$BB"
  # busybox applets listed in initramfs-applets.txt, as symlinks at busybox's own paths
  for a in "${WANT_APPLETS[@]}"; do
    path=$(applet_path "$a")
    [ -e "$HERE/initramfs/$path" ] && continue
    printf 'slink /%s /bin/busybox 0777 0 0\n' "$path"
  done
  for p in "$PROGDIR"/*; do
    [ -e "$p" ] && printf 'file /bin/%s %s 0755 0 0\n' "$(basename "$p")" "$p"
  done
  # guest/initramfs/ copied verbatim (mode kept: x bit decides 0755 vs 0644)
  (cd "$HERE/initramfs" && find . -mindepth 1 | sort) | while read -r f; do
    f=${f#./}; src=$HERE/initramfs/$f
    if [ -d "$src" ]; then printf 'dir /%s 0755 0 0\n' "$f"
    elif [ -x "$src" ]; then printf 'file /%s %s 0755 0 0\n' "$f" "$src"
    else printf 'file /%s %s 0644 0 0\n' "$f" "$src"; fi
  done
} > "$LIST.unsorted"
# dirs first (sorted), then everything else sorted by path: stable order = stable bytes
{ grep '^dir ' "$LIST.unsorted" | sort -k2,2 -u; grep -v '^dir ' "$LIST.unsorted" | sort -k2,2 -u; } > "$LIST"
"$GEN" -t "$SOURCE_DATE_EPOCH" "$LIST" > "$BUILD/initramfs.cpio"

# ---------------------------------------------------------------- outputs
cp "$KDIR/arch/x86/boot/bzImage" "$OUT/bzImage.bin"
cp "$BUILD/initramfs.cpio" "$OUT/initramfs.cpio"
cp /usr/share/seabios/bios.bin "$OUT/bios.bin"
cp /usr/share/seabios/vgabios-stdvga.bin "$OUT/vgabios.bin"

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo unknown; }
BUILD_SECS=$(( $(date +%s) - T0 ))
export M_KSRC_PKG=$KSRC_PKG M_KSRC_VER=$(pkgver "$KSRC_PKG") M_BB_VER=$BB_VER \
  M_SEABIOS_VER=$(pkgver seabios) M_GCC_VER=$(pkgver gcc-12) M_LIBC_VER=$(pkgver libc6-dev-i386) \
  M_KREL=$KREL M_KUTS=$KUTS M_CMDLINE=$CMDLINE_DEFAULT M_BUILD_SECS=$BUILD_SECS M_KBUILD_SECS=$KBUILD_SECS \
  M_OUT=$OUT M_HERE=$HERE M_EPOCH=$SOURCE_DATE_EPOCH M_KCONFIG_FULL=$KDIR/.config
M_PATCHES=$(for p in "${PATCHES[@]}"; do printf '%s\n' "$p"; done) \
M_PROGRAMS=$(for p in "${PROGRAMS[@]}"; do printf '%s\n' "$p"; done) \
node --input-type=module - <<'EOF'
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
const E = process.env;
const sha = (p) => createHash("sha256").update(readFileSync(p)).digest("hex");
const outputs = {};
for (const f of ["bzImage.bin", "initramfs.cpio", "bios.bin", "vgabios.bin"]) {
  const p = `${E.M_OUT}/${f}`;
  outputs[f] = { sha256: sha(p), size: readFileSync(p).length };
}
const list = (s) => (s || "").split("\n").filter(Boolean);
const manifest = {
  kernel: {
    release: E.M_KREL,
    version: `Linux version ${E.M_KREL} ${E.M_KUTS}`.trim(),
    source: `${E.M_KSRC_PKG} ${E.M_KSRC_VER}`,
    config_fragment_sha256: sha(`${E.M_HERE}/kernel.config`),
    full_config_sha256: sha(E.M_KCONFIG_FULL),
    patches: list(E.M_PATCHES).map((p) => ({ file: `guest/patches/${basename(p)}`, sha256: sha(p) })),
    build_seconds: Number(E.M_KBUILD_SECS),
  },
  initramfs: {
    format: "newc cpio, uncompressed",
    programs: list(E.M_PROGRAMS).map((p) => ({ file: `guest/programs/${basename(p)}`, sha256: sha(p) })),
  },
  cmdline: E.M_CMDLINE,
  debian_packages: {
    [E.M_KSRC_PKG]: E.M_KSRC_VER,
    "busybox-static:i386": E.M_BB_VER,
    seabios: E.M_SEABIOS_VER,
    "gcc-12": E.M_GCC_VER,
    "libc6-dev-i386": E.M_LIBC_VER,
  },
  outputs,
  source_date_epoch: Number(E.M_EPOCH),
  build_seconds: Number(E.M_BUILD_SECS),
};
writeFileSync(`${E.M_OUT}/manifest.json`, JSON.stringify(manifest, null, 2) + "\n");
EOF

log "done in ${BUILD_SECS}s:"
(cd "$OUT" && ls -l bzImage.bin initramfs.cpio bios.bin vgabios.bin manifest.json && sha256sum bzImage.bin initramfs.cpio) >&2
