#!/bin/sh
# test: with DEFLATE_ON_OOM the driver gives balloon pages back under memory pressure
# requires: deflate-on-oom
# features: default
. /tests/lib.sh
plan 6
has_feature 2 || skip_all "DEFLATE_ON_OOM not negotiated"
require_balloon 2
# Sized from this guest's free memory (kernels differ by tens of MiB): inflate all but 24 MiB of it,
# then allocate 24 MiB + half the balloon, which only fits if the driver gives balloon pages back.
free=$(($(meminfo MemFree) / 1024))
infl=$((free - 24))
[ "$infl" -ge 16 ] || bail "only $free MiB free of $(memtotal_mib) MiB: too little to test deflate-on-oom (boot with more memory)"
want=$((24 + infl / 2))
host inflate ${infl}M 60s
check "host: balloon at $infl MiB of $free MiB free [$HOST_REPLY]" test "$?" = 0
diag "MemFree with the balloon inflated: $(meminfo MemFree) kB"
memtouch $want > /tmp/oom.out 2>&1
rc=$?
diag "$(cat /tmp/oom.out)"
is "$rc" 0 "a $want MiB allocation succeeds (the driver deflated instead of the OOM killer)"
host actual
cmp_lt "$HOST_REPLY" $((infl * 256)) "actual fell below the $infl MiB target (actual=$HOST_REPLY pages)"
is "$(dmesg | grep -c 'Killed process')" 0 "the OOM killer killed nothing"
