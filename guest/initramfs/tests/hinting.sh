#!/bin/sh
# test: a host-started free page hinting cycle collects hints and the guest gets its memory back
# requires: hint
# features: -deflate-on-oom
. /tests/lib.sh
plan 4
has_feature 3 || skip_all "FREE_PAGE_HINT not negotiated"
free0=$(meminfo MemFree)
host hint start
check "host: hinting started [$HOST_REPLY]" test "$?" = 0
hinted=0; i=0
while [ $i -lt 20 ]; do
  sleep 1; i=$((i + 1))
  host counters
  hinted=$(echo "$HOST_REPLY" | tr ' ' '\n' | awk -F= '$1 == "pagesHinted" { print $2 }')
  [ "${hinted:-0}" -gt 0 ] && break
done
cmp_gt "${hinted:-0}" 0 "the driver hinted free pages (pagesHinted=$hinted after ${i}s)"
host hint stop
check "host: hinting stopped (STOP + DONE)" test "$?" = 0
# after DONE the driver frees the pages it held for hinting
i=0
while [ $i -lt 20 ] && [ "$(meminfo MemFree)" -lt $((free0 - 8192)) ]; do sleep 1; i=$((i + 1)); done
cmp_ge "$(meminfo MemFree)" $((free0 - 8192)) "MemFree recovered to within 8 MiB of the start after DONE"
