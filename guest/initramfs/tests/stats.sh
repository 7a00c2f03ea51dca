#!/bin/sh
# test: memory statistics reach the host and agree with /proc/meminfo
# requires: stats
# features: -deflate-on-oom
. /tests/lib.sh
plan 4
has_feature 1 || skip_all "STATS_VQ not negotiated"

host stats 10s
check "host: a fresh stats sample arrives on request" test "$?" = 0
diag "$HOST_REPLY"
memtot=$(reply_field MEMTOT)
is "$((${memtot:-0} / 1024))" "$(meminfo MemTotal)" "MEMTOT (bytes) = MemTotal"
memfree=$(reply_field MEMFREE)
cmp_gt "${memfree:-0}" 0 "MEMFREE is reported"

# allocate 24 MiB, hold it, and watch MEMFREE fall
# memtouch holds the memory until its stdin (a FIFO this script keeps open on fd 3) closes
rm -f /tmp/hold.fifo; busybox mkfifo /tmp/hold.fifo
memtouch --hold -1 24 < /tmp/hold.fifo > /tmp/mt.out &
exec 3> /tmp/hold.fifo
i=0; while [ $i -lt 100 ] && ! grep -q MiB /tmp/mt.out; do sleep 0.1; i=$((i + 1)); done
# a sample can predate the allocation (the driver refills its buffer asynchronously): ask a few times
tries=0
while :; do
  host stats 10s
  free2=$(reply_field MEMFREE)
  tries=$((tries + 1))
  [ $(( (${memfree:-0} - ${free2:-0}) / 1048576 )) -gt 16 ] || [ $tries -ge 5 ] && break
  sleep 1
done
diag "samples taken: $tries"
exec 3>&-; wait
cmp_gt $(( (${memfree:-0} - ${free2:-0}) / 1048576 )) 16 "MEMFREE dropped by > 16 MiB while 24 MiB are held (${memfree} -> ${free2})"
