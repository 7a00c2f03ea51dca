#!/bin/sh
# test: fault lie-about-init: the patched driver's self-check catches a device that sets init-bitmap bits without filling
# requires: init-on-inflate
# fault: lie-about-init
# cmdline: init_on_alloc=1 virtio_balloon.devinit_verify=1
# features: -deflate-on-oom
# boot: fresh
# The device sets every bitmap bit but leaves the pages untouched. Free memory is dirtied first, so
# the pages the balloon takes hold stale data; with devinit_verify=1 the driver checks each page the
# device claims before trusting it (spec, Security Considerations: Data Integrity).
. /tests/lib.sh
has_feature 7 || skip_all "DEVICE_INIT_ON_INFLATE (bit 7) not negotiated by this kernel (needs the bit-7 driver patch)"
plan 6
require_balloon 7
devinit-check dirty 96 > /dev/null
check "free memory dirtied" test "$?" = 0
host inflate 64M 60s
check "host: balloon at 64 MiB [$HOST_REPLY]" test "$?" = 0
host deflate 60s
check "host: deflated [$HOST_REPLY]" test "$?" = 0
devinit-check check 32 > /tmp/dc.out 2>&1
rc=$?
diag "$(cat /tmp/dc.out)"
is "$rc" 1 "devinit-check reports pages the device claimed but did not initialise"
