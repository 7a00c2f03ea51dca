#!/bin/sh
# test: with page poisoning on, PAGE_POISON is negotiated and reported pages are filled with poison_val
# cmdline: page_poison=1
# features: -deflate-on-oom
. /tests/lib.sh
plan 4
grep -q page_poison=1 /proc/cmdline || bail "page_poison=1 missing from the command line"
check "PAGE_POISON (bit 4) negotiated" has_feature 4
check "PAGE_REPORTING (bit 5) still negotiated with poisoning" has_feature 5
pois() { host counters; echo "$HOST_REPLY" | tr ' ' '\n' | awk -F= '$1 == "bytesPoisoned" { print $2 }'; }
p0=$(pois)
memtouch 48 > /dev/null
i=0; p1=$p0
while [ $i -lt 20 ] && [ "$p1" = "$p0" ]; do sleep 1; p1=$(pois); i=$((i + 1)); done
cmp_gt "$((p1 - p0))" 0 "reported pages were filled with poison_val (bytesPoisoned $p0 -> $p1)"
memtouch 48 > /dev/null
is "$(dmesg | grep -ci 'corruption')" 0 "no 'memory corruption' from the poison checker after reusing reported pages"
