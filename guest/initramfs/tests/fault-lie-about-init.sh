#!/bin/sh
# test: fault lie-about-init: a bit-7 driver trusts the inflate bitmap, so stale data shows (the hazard the spec's Security Considerations name)
# fault: lie-about-init
# cmdline: init_on_alloc=1
# features: -deflate-on-oom
# The device sets every bitmap bit but leaves the pages untouched. A driver that negotiated
# DEVICE_INIT_ON_INFLATE may skip initialising those pages on deflate, so a fresh allocation can see the
# old contents. balloon-memcheck's pattern is freed first, so stale pages carry it.
. /tests/lib.sh
has_feature 7 || skip_all "DEVICE_INIT_ON_INFLATE (bit 7) not negotiated by this kernel (needs the bit-7 driver patch)"
plan 3
host inflate 64M 60s
check "host: balloon at 64 MiB [$HOST_REPLY]" test "$?" = 0
host deflate 60s
check "host: deflated [$HOST_REPLY]" test "$?" = 0
memtouch --check-zero 64 > /tmp/cz.out 2>&1
rc=$?
diag "$(cat /tmp/cz.out)"
is "$rc" 2 "pages claimed initialised by the lying device reach user space non-zero (memtouch --check-zero)"
