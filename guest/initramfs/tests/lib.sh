# /tests/lib.sh: TAP helpers and the host-step channel for guest test scripts (busybox sh).
# Source it first:   . /tests/lib.sh
# (The harness uploads the current copy before each run; the one in the image is for hand use.)
#
#   plan N                 the plan (printed with the first assertion, so skip_all may still follow it;
#                          or call done_testing at the end instead)
#   ok DESC / not_ok DESC  one assertion
#   check DESC CMD ARGS..  ok if CMD succeeds
#   is GOT WANT DESC       ok if the two strings are equal (prints both on failure)
#   cmp_ge A B DESC        ok if integer A >= B (also cmp_le, cmp_gt, cmp_lt)
#   skip DESC REASON       skipped assertion
#   skip_all REASON        the whole script is skipped (1..0 # SKIP; before or after plan, exits);
#                          after some assertions, the rest of the plan is reported as skipped
#   require_balloon [BIT..] assertions: a driver is bound to virtio device 5 and these feature bits are
#                          negotiated (Bail out! if not: nothing after it could fail honestly)
#   memtotal_mib           MemTotal in MiB; size tests by it, not by one kernel's footprint
#   diag TEXT              a "# TEXT" line
#   bail REASON            Bail out!
#   host STEP ARGS..       ask the host to do something (set the balloon target, wait, run cycles...);
#                          the host's answer is in $HOST_REPLY; returns 1 if the host refused
#   meminfo FIELD          a /proc/meminfo value in kB (e.g. meminfo MemFree)
#   balloon_features       the negotiated feature bits of the balloon as a 64-char 0/1 string
#   has_feature BIT        0 if feature bit BIT was negotiated
#   done_testing           print 1..N for the assertions so far and exit with their status

_tap_n=0
_tap_failed=0
_tap_plan=
_tap_plan_out=

plan() { _tap_plan=$1; }
# The plan goes out just before the first assertion: a skip_all between plan and it is still a skip_all.
_plan_out() { [ -n "$_tap_plan" ] && [ -z "$_tap_plan_out" ] && { _tap_plan_out=1; echo "1..$_tap_plan"; }; :; }
ok() { _plan_out; _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $*"; }
not_ok() { _plan_out; _tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1)); echo "not ok $_tap_n - $*"; }
diag() { echo "# $*"; }
bail() { echo "Bail out! $*"; exit 255; }
skip() { _plan_out; _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1 # SKIP ${2:-}"; }
skip_all() {
  if [ "$_tap_n" -eq 0 ]; then echo "1..0 # SKIP $*"; exit 0; fi
  _plan_out
  while [ "$_tap_n" -lt "${_tap_plan:-$_tap_n}" ]; do skip "not run" "$*"; done
  [ -n "$_tap_plan" ] || echo "1..$_tap_n"
  [ "$_tap_failed" -eq 0 ]; exit $?
}

check() {
  _d=$1; shift
  if "$@"; then ok "$_d"; else not_ok "$_d"; diag "command failed: $*"; fi
}

is() {
  if [ "$1" = "$2" ]; then ok "$3"; else not_ok "$3"; diag "got:  '$1'"; diag "want: '$2'"; fi
}

_cmp() {
  _op=$1 _a=$2 _b=$3; shift 3
  if [ "$_a" "$_op" "$_b" ] 2>/dev/null; then ok "$*"; else not_ok "$*"; diag "wanted $_a $_op $_b"; fi
}
cmp_ge() { _cmp -ge "$@"; }
cmp_le() { _cmp -le "$@"; }
cmp_gt() { _cmp -gt "$@"; }
cmp_lt() { _cmp -lt "$@"; }

done_testing() {
  [ -n "$_tap_plan_out" ] || echo "1..$_tap_n"
  [ "$_tap_failed" -eq 0 ] && exit 0
  exit 1
}

# Host channel: "@@HOST <step>" on the console; the host answers one line on the console's input,
# "@@OK <text>" or "@@ERR <text>". The request goes to stderr and the answer comes on stdin: both must be
# the console (do not redirect them), stdout may be captured.
HOST_REPLY=
host() {
  echo "@@HOST $*" >&2   # stderr: still the console inside $(...)
  IFS= read -r _reply || { HOST_REPLY="no reply (stdin closed)"; return 1; }
  case "$_reply" in
    "@@OK"*) HOST_REPLY=${_reply#@@OK}; HOST_REPLY=${HOST_REPLY# }; return 0 ;;
    "@@ERR"*) HOST_REPLY=${_reply#@@ERR}; HOST_REPLY=${HOST_REPLY# }; return 1 ;;
    *) HOST_REPLY="unexpected reply: $_reply"; return 1 ;;
  esac
}

meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }

# reply_field KEY: the value of KEY=VALUE in the last host reply ($HOST_REPLY)
reply_field() { echo "$HOST_REPLY" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
# counter NAME: one of the device's counters, asked of the host now
counter() { host counters; reply_field "$1"; }

balloon_dev() {
  for d in /sys/bus/virtio/devices/*; do
    [ "$(cat "$d/device" 2>/dev/null)" = "0x0005" ] && { echo "$d"; return 0; }
  done
  return 1
}
balloon_features() { _bd=$(balloon_dev) && cat "$_bd/features"; }

require_balloon() {
  _bd=$(balloon_dev)
  [ -n "$_bd" ] && [ -e "$_bd/driver" ]
  if [ $? -ne 0 ]; then not_ok "a driver is bound to virtio device 5 (balloon)"; bail "no balloon driver bound: nothing below can fail honestly"; fi
  ok "a driver is bound to virtio device 5 (balloon)"
  for _b in "$@"; do
    if has_feature "$_b"; then ok "feature bit $_b negotiated"; else not_ok "feature bit $_b negotiated"; bail "feature bit $_b not negotiated"; fi
  done
}

memtotal_mib() { echo $(($(meminfo MemTotal) / 1024)); }
has_feature() {
  _f=$(balloon_features) || return 1
  [ "$(echo "$_f" | cut -c$(($1 + 1)))" = 1 ]
}

# A balloon the device stalls must not take the guest with it: wait 5 s after a target change, log how far
# the balloon got (of $1 pages), then check that an 8 MiB allocation works and the shell answers (2 assertions).
guest_usable_with_stalled_balloon() {
  host sleep 5000
  host actual
  diag "actual after 5 s: $HOST_REPLY of $1 pages"
  memtouch 8 > /tmp/stall.out 2>&1
  is "$?" 0 "an 8 MiB allocation still works"
  check "the shell still answers" true
}
