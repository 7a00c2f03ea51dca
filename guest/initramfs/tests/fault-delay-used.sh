#!/bin/sh
# test: fault delay-used: every used buffer is held 50 ms; inflate and deflate still complete, only slower
# fault: delay-used=50
# boot: fresh
# timeout: 180s
# The device answers each request 50 ms (host clock) late. A correct driver waits for the acknowledgement
# (Linux blocks in tell_host until the buffer comes back) and gets there, just more slowly.
. /tests/lib.sh
plan 5
require_balloon
host inflate 32M 120s
check "host: balloon reaches 32 MiB with every answer 50 ms late [$HOST_REPLY]" test "$?" = 0
host actual
is "$HOST_REPLY" 8192 "the driver's actual is 8192 pages"
host await faults.delayUsedMs 32 10s
check "at least 32 used batches were held [$HOST_REPLY]" test "$?" = 0
host deflate 120s
check "host: deflated to 0 [$HOST_REPLY]" test "$?" = 0
