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
plan 5
require_balloon
host target 16M
check "host: target 16 MiB set [$HOST_REPLY]" test "$?" = 0
guest_usable_with_stalled_balloon 4096
# after the 5 s wait: the fault's counter exists only once it has acted
host await faults.dropUsedEvery 1 10s
check "the device dropped a used buffer [$HOST_REPLY]" test "$?" = 0
