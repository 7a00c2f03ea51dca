#!/bin/sh
# test: fault withhold-interrupts: used buffers are written but never signalled; the guest stays alive
# fault: withhold-interrupts
# features: -deflate-on-oom
# boot: fresh
# timeout: 120s
# Linux's balloon sleeps until the (withheld) interrupt, so it stalls after its first request; the
# used ring is correct, only the notification is missing. The guest must stay usable.
. /tests/lib.sh
plan 5
require_balloon
host target 16M
check "host: target 16 MiB set [$HOST_REPLY]" test "$?" = 0
guest_usable_with_stalled_balloon 4096
# after the wait: the fault must have acted (a used buffer written, its interrupt withheld)
host await faults.withholdInterrupts 1 10s
check "the device withheld a queue interrupt [$HOST_REPLY]" test "$?" = 0
