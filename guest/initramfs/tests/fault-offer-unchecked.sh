#!/bin/sh
# test: fault offer-unchecked: the device offers DEVICE_INIT_REPORTED (bit 6) without PAGE_REPORTING (bit 5); the driver does not accept bit 6
# fault: offer-unchecked
# features: -reporting
# boot: fresh
# timeout: 120s
# Bit 6 requires bit 5 (virtio balloon DEVICE_INIT patch v3, Feature bits), and a driver MUST NOT accept a
# feature that requires a feature it does not accept (virtio 1.2 §2.2.2). Any driver passes that does not
# know bit 6; a driver that knows it must drop it when bit 5 is missing, and the balloon must still work.
. /tests/lib.sh
plan 5
require_balloon
host await faults.offerUnchecked 1 10s
check "the device offered bit 6 without bit 5 [$HOST_REPLY]" test "$?" = 0
has_feature 6
is "$?" 1 "the driver did not accept DEVICE_INIT_REPORTED (bit 6)"
host inflate 16M 60s
check "host: balloon at 16 MiB [$HOST_REPLY]" test "$?" = 0
host deflate 60s
check "host: deflated [$HOST_REPLY]" test "$?" = 0
