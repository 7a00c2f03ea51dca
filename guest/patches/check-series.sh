#!/usr/bin/env bash
# guest/patches/check-series.sh: checks the patch series the way a maintainer would before taking it.
# Extracts Debian's linux-source-6.12 into a git tree (commit "pristine"), then for every patch of
# guest/patches/ in order (the cover letter 0000-* excepted): `git am`, `scripts/checkpatch.pl --strict`
# (0 errors and 0 warnings required; checks are listed, and justified in the cover letter), a build,
# and a boot (guest/patches/boot-check.ts: v86, our device offering bits 0-7, the committed initramfs;
# shell reached, driver negotiates, 16 MiB inflate + deflate, no Oops/BUG/WARNING in the kernel log).
#
#   guest/patches/check-series.sh [--quick] [--no-build] [--no-boot]
#     (default)   `make bzImage` (tinyconfig + guest/kernel.config) after every patch, and boot it:
#                 each step builds, links and boots on its own. Incremental, but patches that touch
#                 widely included headers rebuild most of the kernel: ~N x the kernel build time.
#     --quick     after each patch compile the directories of the .c files it touches (one
#                 `make prepare` first), and link and boot bzImage once, after the last patch
#     --no-build  git am + checkpatch only
#     --no-boot   no boots (e.g. without `npm ci` in this checkout)
# Environment: CHECK_DIR (default guest/.build/check-series), JOBS (default 2). Builds run under
# `nice -n 15`. Exit status: 0 all good, 1 the first failing step (named on stderr).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST=$(dirname "$HERE")
MODE=full
BOOT=1
for a in "$@"; do
  case $a in
    --quick) MODE=quick ;; --no-build) MODE=none ;; --no-boot) BOOT=0 ;;
    *) sed -n '2,19p' "$0"; exit 1 ;;
  esac
done
ROOT=$(dirname "$GUEST")
WORK=${CHECK_DIR:-$GUEST/.build/check-series}
JOBS=${JOBS:-2}
TARBALL=/usr/src/linux-source-6.12.tar.xz
KDIR=$WORK/linux-source-6.12
die() { printf '[check-series] FAIL: %s\n' "$*" >&2; exit 1; }
log() { printf '[check-series] %s\n' "$*" >&2; }
[ -f "$TARBALL" ] || die "no $TARBALL (apt-get install linux-source-6.12)"
if [ "$MODE" != none ] && [ "$BOOT" = 1 ] && [ ! -x "$ROOT/node_modules/.bin/tsx" ]; then
  die "booting each step needs the project's node modules: run \`npm ci\` in $ROOT (or pass --no-boot)"
fi

# Boots the bzImage of step $1 (saved as $WORK/bzImage-$1) in v86.
boot() {
  cp "$KDIR/arch/x86/boot/bzImage" "$WORK/bzImage-$1"
  (cd "$ROOT" && nice -n 15 node_modules/.bin/tsx guest/patches/boot-check.ts "$WORK/bzImage-$1") > "$WORK/boot-$1.log" 2>&1 \
    || { cat "$WORK/boot-$1.log" >&2; return 1; }
  sed -n 's/^boot-check: ok, //p' "$WORK/boot-$1.log"
}

g() { git -C "$KDIR" -c user.name=check-series -c user.email=check-series@localhost "$@"; }
if ! g rev-parse -q --verify pristine >/dev/null 2>&1; then
  log "extracting $TARBALL into $WORK"
  rm -rf "$KDIR" && mkdir -p "$WORK" && tar -C "$WORK" -xJf "$TARBALL"
  g init -q
  # Debian's .gitignore ignores the whole top level: add the tree by force.
  g add -f . && g commit -q -m "linux-source-6.12 $(dpkg-query -W -f='${Version}' linux-source-6.12)" && g tag pristine
fi
g am --abort >/dev/null 2>&1 || true
g reset -q --hard pristine

KMAKE=(nice -n 15 make -C "$KDIR" ARCH=i386 -j"$JOBS")
if [ "$MODE" != none ]; then
  "${KMAKE[@]}" -s tinyconfig
  (cd "$KDIR" && ARCH=i386 scripts/kconfig/merge_config.sh -m -O "$KDIR" .config "$GUEST/kernel.config" >/dev/null)
  "${KMAKE[@]}" -s olddefconfig
  [ "$MODE" = quick ] && "${KMAKE[@]}" -s prepare
fi

shopt -s nullglob
PATCHES=()
for p in "$HERE"/*.patch; do
  case $(basename "$p") in 0000-*) ;; *) PATCHES+=("$p") ;; esac
done
[ ${#PATCHES[@]} -gt 0 ] || die "no patches in $HERE"

n=0
for p in "${PATCHES[@]}"; do
  n=$((n + 1))
  name=$(basename "$p")
  g am -q "$p" || die "[$n/${#PATCHES[@]}] git am $name"
  cp_out=$(cd "$KDIR" && perl scripts/checkpatch.pl --strict --no-summary --terse "$p" || true)
  errors=$(grep -c ': ERROR:' <<<"$cp_out" || true)
  warnings=$(grep -c ': WARNING:' <<<"$cp_out" || true)
  checks=$(grep -c ': CHECK:' <<<"$cp_out" || true)
  [ -n "$cp_out" ] && printf '%s\n' "$cp_out" | sed 's/^/    /' >&2
  [ "$errors" = 0 ] && [ "$warnings" = 0 ] || die "[$n/${#PATCHES[@]}] checkpatch --strict $name: $errors error(s), $warnings warning(s)"
  t0=$(date +%s)
  case $MODE in
    full)
      "${KMAKE[@]}" bzImage > "$WORK/build-$n.log" 2>&1 || { tail -30 "$WORK/build-$n.log" >&2; die "[$n/${#PATCHES[@]}] make bzImage after $name (log: $WORK/build-$n.log)"; } ;;
    quick)
      # Whole directories: kbuild then compiles what this configuration builds there (a touched
      # file may be configured out, e.g. kernel/power/snapshot.c without HIBERNATION).
      mapfile -t dirs < <(g diff --name-only HEAD~1 HEAD -- '*.c' | xargs -r -n1 dirname | sort -u | sed 's|$|/|')
      if [ ${#dirs[@]} -gt 0 ]; then
        "${KMAKE[@]}" "${dirs[@]}" > "$WORK/build-$n.log" 2>&1 || { tail -30 "$WORK/build-$n.log" >&2; die "[$n/${#PATCHES[@]}] compiling ${dirs[*]} after $name (log: $WORK/build-$n.log)"; }
      fi ;;
  esac
  build_s=$(( $(date +%s) - t0 ))
  if grep -q 'warning:' "$WORK/build-$n.log" 2>/dev/null; then
    grep 'warning:' "$WORK/build-$n.log" >&2
    die "[$n/${#PATCHES[@]}] compiler warnings after $name"
  fi
  booted=""
  if [ "$MODE" = full ] && [ "$BOOT" = 1 ]; then
    t1=$(date +%s)
    how=$(boot "$n") || die "[$n/${#PATCHES[@]}] boot after $name (log: $WORK/boot-$n.log)"
    booted="; boot ok in $(( $(date +%s) - t1 )) s ($how)"
  fi
  log "[$n/${#PATCHES[@]}] $name: checkpatch 0 errors, 0 warnings, $checks check(s); build ($MODE) ok in $build_s s$booted"
done
if [ "$MODE" = quick ]; then
  "${KMAKE[@]}" bzImage > "$WORK/build-final.log" 2>&1 || { tail -30 "$WORK/build-final.log" >&2; die "make bzImage after the last patch"; }
  how=""
  if [ "$BOOT" = 1 ]; then how=$(boot final) || die "boot after the last patch (log: $WORK/boot-final.log)"; fi
  log "bzImage after the last patch: ok${how:+, boots ($how)}"
fi
log "all ${#PATCHES[@]} patches apply, pass checkpatch --strict and build ($MODE)$([ "$MODE" = full ] && [ "$BOOT" = 1 ] && echo ' and boot')"
