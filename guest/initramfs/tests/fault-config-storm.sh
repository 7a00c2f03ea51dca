#!/bin/sh
# test: fault config-storm: 400 config interrupts with num_pages flapping; the balloon still reaches each final target
# fault: config-storm=400@5+toggle
# boot: fresh
# timeout: 180s
# After DRIVER_OK and after every host target change the device raises 400 config-change interrupts,
# 5 ms apart, num_pages alternating between the previous and the new target and ending on the new one.
# A correct driver re-reads num_pages on each change and settles on the last value.
. /tests/lib.sh
plan 5
require_balloon
host inflate 48M 120s
check "host: balloon reaches 48 MiB through the storm [$HOST_REPLY]" test "$?" = 0
host inflate 16M 120s
check "host: balloon comes back to 16 MiB through the storm [$HOST_REPLY]" test "$?" = 0
host await faults.configStorm 3 10s
check "the device ran its storms [$HOST_REPLY]" test "$?" = 0
memtouch 8 > /dev/null 2>&1
is "$?" 0 "the guest still allocates memory"
