#!/bin/sh
# test: with page poisoning on, PAGE_POISON is negotiated and reported pages are filled with poison_val
# requires: poison
# memory: 256M
# cmdline: page_poison=1
# features: -deflate-on-oom
. /tests/lib.sh
plan 4
grep -q page_poison=1 /proc/cmdline || bail "page_poison=1 missing from the command line"
check "PAGE_POISON (bit 4) negotiated" has_feature 4
check "PAGE_REPORTING (bit 5) still negotiated with poisoning" has_feature 5
p0=$(counter bytesPoisoned)
memtouch 96 > /dev/null
host await bytesPoisoned $((p0 + 4194304)) 30s
check "reported pages were filled with poison_val [$HOST_REPLY]" test "$?" = 0
memtouch 96 > /dev/null
is "$(dmesg | grep -ci 'corruption')" 0 "no 'memory corruption' from the poison checker after reusing reported pages"
