#!/bin/sh
# test: free page reporting reports freed memory to the device
# memory: 256M
# features: -deflate-on-oom
#   Linux reports only while free memory > low watermark + 32 x 4 MiB blocks: 128 MiB guests never report.
. /tests/lib.sh
plan 2
has_feature 5 || skip_all "PAGE_REPORTING not negotiated"
r0=$(counter pagesReported)
memtouch 96 > /dev/null
host await pagesReported $((r0 + 4096)) 30s
check "at least 16 MiB of the freed 96 MiB reported [$HOST_REPLY]" test "$?" = 0
memtouch 96 > /dev/null
is "$(dmesg | grep -ci 'corruption')" 0 "reported pages are reusable (no corruption reports)"
