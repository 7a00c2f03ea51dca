#!/bin/sh
# test: fault drop-used: every 4th inflate/deflate request is never returned; the guest stays alive
# fault: drop-used-every=4
# features: -deflate-on-oom
# boot: fresh
# timeout: 120s
# The device processes the request but never writes its used element. Linux's balloon waits in
# tell_host() for that buffer with no timeout, so the balloon stops where it is; what a driver must
# keep is a working guest (the wait is in a workqueue, not in anything the user runs).
. /tests/lib.sh
plan 4
host target 16M
check "host: target 16 MiB set [$HOST_REPLY]" test "$?" = 0
host sleep 5000
host actual
diag "actual after 5 s: $HOST_REPLY of 4096 pages (Linux waits for the dropped buffer forever)"
host await faults.dropUsedEvery 1 10s
check "the device dropped a used buffer [$HOST_REPLY]" test "$?" = 0
memtouch 8 > /tmp/drop.out 2>&1
is "$?" 0 "an 8 MiB allocation still works"
check "the shell still answers" true
