#!/usr/bin/env bash
# Wrong ports, busy ports, silent pens and bad command lines: a clear message
# and the documented exit code, within bounded time.
. "$(dirname "$0")/lib.sh"

expect 3 --port /dev/ttyACM97 info
assert_contains "$ERR" "/dev/ttyACM97" "nonexistent port named"
expect 3 --port "$T/nothing" --json info
assert_eq "$(jqo .error.code)" "no_port" "JSON error code for a missing port"

start_emu pen --sessions 0
flock -x "$EMU_PORT" sleep 4 &
holder=$!
sleep 0.3
expect 7 --port "$EMU_PORT" info
assert_contains "$ERR" "in use" "busy port reported as in use"
wait "$holder"
expect 0 --port "$EMU_PORT" info
ok "port usable again once released"
stop_emu "$EMU_PID"

start_emu mute --sessions 0 --fault-mute
t0=$(date +%s%N)
expect 6 --port "$EMU_PORT" --timeout 200 info
t1=$(date +%s%N)
assert_contains "$ERR" "answer" "silent pen: says it did not answer"
[ $(( (t1 - t0) / 1000000 )) -lt 15000 ] && ok "silent pen: gave up in $(( (t1 - t0) / 1000000 )) ms" || fail "took too long"
stop_emu "$EMU_PID"

expect 2 frobnicate
expect 2 --port /dev/null
expect 2 --port /dev/null --timeout abc info
assert_contains "$ERR" "abc" "bad number named"
expect 2 --port /dev/null sessions pull --bogus
assert_contains "$ERR" "--bogus" "unknown option named"
PENLINK_SOCKET="$T/no-daemon.sock" expect 9 info
assert_contains "$ERR" "--port" "no port and no daemon: says how to give a port"
expect 3 sessions show "$T/none.plrec"
done_testing
