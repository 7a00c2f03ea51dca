#!/bin/sh
# test: a 32 MiB pattern in guest memory survives many host-driven inflate/deflate cycles
# features: -deflate-on-oom
# timeout: 300s
# The host runs the cycles (host step "cycles N A B", each step waits for actual == target);
# balloon-memcheck verifies every word of its pattern after each round.
. /tests/lib.sh
ROUNDS=${MEMCHECK_ROUNDS:-10}
CYCLES=${MEMCHECK_CYCLES:-100}
SIZE=${MEMCHECK_SIZE:-16M}
plan 2

command -v balloon-memcheck >/dev/null || bail "balloon-memcheck is not in this image (rebuild the guest)"
balloon-memcheck -m 32 -r "$ROUNDS" -H "cycles $CYCLES $SIZE 0"
is "$?" 0 "32 MiB pattern intact after $ROUNDS x $CYCLES inflate($SIZE)/deflate cycles"
infl=$(counter pagesInflated)
cmp_ge "${infl:-0}" $((ROUNDS * CYCLES * $(echo "$SIZE" | sed "s/M$//") * 256)) "the device saw every inflated page (pagesInflated=$infl)"
