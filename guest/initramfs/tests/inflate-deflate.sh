#!/bin/sh
# test: inflate lowers MemTotal by exactly the balloon, deflate gives it back
# features: -deflate-on-oom
#   (with DEFLATE_ON_OOM negotiated Linux keeps MemTotal and lowers only MemFree)
. /tests/lib.sh
plan 8

ev() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
total0=$(meminfo MemTotal)
infl0=$(ev balloon_inflate)
diag "MemTotal before: ${total0} kB"

host inflate 32M 60s
check "host: actual reaches 32 MiB (8192 pages) [$HOST_REPLY]" test "$?" = 0
host actual
is "$HOST_REPLY" 8192 "the driver's actual is 8192 pages"
total1=$(meminfo MemTotal)
is "$((total0 - total1))" 32768 "MemTotal dropped by 32768 kB"
infl1=$(ev balloon_inflate)
is "$((infl1 - infl0))" 8192 "/proc/vmstat balloon_inflate grew by 8192"

host inflate 8M 60s
check "host: partial deflate to 8 MiB [$HOST_REPLY]" test "$?" = 0
is "$(( total0 - $(meminfo MemTotal) ))" 8192 "MemTotal is 8 MiB below the start"

host deflate 60s
check "host: deflate to 0 [$HOST_REPLY]" test "$?" = 0
is "$(meminfo MemTotal)" "$total0" "MemTotal is back to ${total0} kB"
