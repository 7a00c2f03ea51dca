#!/bin/sh
# test: fault huge-num-pages: num_pages = 0xFFFFFFFF from DRIVER_OK; the guest stays alive, then a sane target is reached
# fault: huge-num-pages
# boot: fresh
# timeout: 240s
# The device asks for 0xFFFFFFFF pages (16 TiB) whatever the host wants: the spec's denial-of-service
# case. A correct driver inflates what it can spare without starving the guest (and, with
# DEFLATE_ON_OOM, gives pages back under pressure), and follows the host once it sets a sane target.
. /tests/lib.sh
plan 7
require_balloon
host sleep 10000
check "the shell answers after ~10 s of num_pages = 0xFFFFFFFF" true
host actual
diag "actual under the fault: $HOST_REPLY pages; MemFree $(meminfo MemFree) kB"
cmp_gt "$HOST_REPLY" 0 "the driver inflated what it could"
memtouch 8 > /tmp/huge.out 2>&1
rc=$?
diag "$(cat /tmp/huge.out)"
is "$rc" 0 "an 8 MiB allocation still works"
host inflate 16M 120s
check "host: a sane target (16 MiB) is reached [$HOST_REPLY]" test "$?" = 0
host counters
diag "$HOST_REPLY"
case "$HOST_REPLY" in *faults.hugeNumPages=*) r=0 ;; *) r=1 ;; esac
is "$r" 0 "the device reports the fault acted"
is "$(dmesg | grep -c 'Killed process')" 0 "the OOM killer killed nothing"
