#!/bin/sh
# test: fault reset-mid-inflate: the device enters DEVICE_NEEDS_RESET instead of completing an inflate; the guest stays alive
# fault: reset-mid-inflate
# features: -deflate-on-oom
# boot: fresh
# timeout: 120s
# Linux 6.12 does not reset a virtio device that sets DEVICE_NEEDS_RESET; its balloon waits for the
# inflate that never completes. The guest must stay usable.
. /tests/lib.sh
plan 5
require_balloon
host target 16M
check "host: target 16 MiB set [$HOST_REPLY]" test "$?" = 0
guest_usable_with_stalled_balloon 4096
# after the wait: the fault must have acted (an inflate answered with DEVICE_NEEDS_RESET)
host await faults.resetMidInflate 1 10s
check "the device answered an inflate with DEVICE_NEEDS_RESET [$HOST_REPLY]" test "$?" = 0
