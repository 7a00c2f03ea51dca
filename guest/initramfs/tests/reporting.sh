#!/bin/sh
# test: free page reporting reports freed memory to the device
# requires: reporting
# memory: 256M
# features: -deflate-on-oom
#   Linux reports only while free memory > low watermark + 32 x 4 MiB blocks: 128 MiB guests never report.
. /tests/lib.sh
plan 2
has_feature 5 || skip_all "PAGE_REPORTING not negotiated"
# three quarters of this guest's free memory, whatever the kernel's own footprint
mib=$(($(meminfo MemFree) * 3 / 4 / 1024))
r0=$(counter pagesReported)
memtouch $mib > /dev/null
host await pagesReported $((r0 + 4096)) 30s
check "at least 16 MiB of the freed $mib MiB reported [$HOST_REPLY]" test "$?" = 0
memtouch $mib > /dev/null
is "$(dmesg | grep -ci 'corruption')" 0 "reported pages are reusable (no corruption reports)"
