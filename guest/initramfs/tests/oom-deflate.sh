#!/bin/sh
# test: with DEFLATE_ON_OOM the driver gives balloon pages back under memory pressure
# features: default
. /tests/lib.sh
plan 4
has_feature 2 || skip_all "DEFLATE_ON_OOM not negotiated"
host inflate 80M 60s
check "host: balloon at 80 MiB [$HOST_REPLY]" test "$?" = 0
diag "MemFree with the balloon inflated: $(meminfo MemFree) kB"
memtouch 56 > /tmp/oom.out 2>&1
rc=$?
diag "$(cat /tmp/oom.out)"
is "$rc" 0 "a 56 MiB allocation succeeds (the driver deflated instead of the OOM killer)"
host actual
cmp_lt "$HOST_REPLY" 20480 "actual fell below the 80 MiB target (actual=$HOST_REPLY pages)"
is "$(dmesg | grep -c 'Killed process')" 0 "the OOM killer killed nothing"
