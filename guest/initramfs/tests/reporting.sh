#!/bin/sh
# test: free page reporting reports freed memory to the device
# features: -deflate-on-oom
. /tests/lib.sh
plan 1
has_feature 5 || skip_all "PAGE_REPORTING not negotiated"
rep() { host counters; echo "$HOST_REPLY" | tr ' ' '\n' | awk -F= '$1 == "pagesReported" { print $2 }'; }
r0=$(rep)
memtouch 48 > /dev/null
# Linux reports after a 2 s delay, in order-10 (4 MiB) blocks
i=0; r1=$r0
while [ $i -lt 20 ] && [ $((r1 - r0)) -lt 4096 ]; do sleep 1; r1=$(rep); i=$((i + 1)); done
diag "pagesReported $r0 -> $r1 after ${i}s"
cmp_ge $((r1 - r0)) 4096 "at least 16 MiB of the freed 48 MiB reported"
