#!/bin/sh
# test: the balloon device is found and the driver negotiates the offered features
# features: default
. /tests/lib.sh
plan 4

dev=$(balloon_dev)
check "a virtio device with device id 5 (balloon) exists" test -n "$dev"
check "it is bound to the virtio_balloon driver" test -e "$dev/driver"
f=$(balloon_features)
diag "negotiated features: $f"
is "$(echo "$f" | cut -c33)" 1 "VIRTIO_F_VERSION_1 (bit 32) negotiated"
host actual
is "$HOST_REPLY" 0 "the host sees actual = 0 after boot"
