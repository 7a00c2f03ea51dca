#!/bin/sh
# test: fault withhold-interrupts: used buffers are written but never signalled; the guest stays alive
# fault: withhold-interrupts
# features: -deflate-on-oom
# boot: fresh
# timeout: 120s
# Linux's balloon sleeps until the (withheld) interrupt, so it stalls after its first request; the
# used ring is correct, only the notification is missing. The guest must stay usable.
. /tests/lib.sh
plan 3
host target 16M
check "host: target 16 MiB set [$HOST_REPLY]" test "$?" = 0
host sleep 5000
host actual
diag "actual after 5 s without interrupts: $HOST_REPLY of 4096 pages"
memtouch 8 > /tmp/wi.out 2>&1
is "$?" 0 "an 8 MiB allocation still works"
check "the shell still answers" true
