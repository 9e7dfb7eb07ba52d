#!/usr/bin/env bash
# Ports are serial ttys, nothing else: penctl --port and penlinkd's attach
# (which may run as root) refuse /dev/null, /dev/urandom, /dev/zero, a
# console, a regular file, a FIFO and a folder with an error naming the path
# and what it is, before reading anything; the daemon audits each refusal.
# A pseudo-terminal (penemu) is still a port.
. "$(dirname "$0")/lib.sh"

echo "not a pen" >"$T/file"
mkdir "$T/dir"
mkfifo "$T/fifo"
# path|what the refusal must say about it
CASES=(
  "/dev/null|character device 1:3"
  "/dev/urandom|character device 1:9"
  "/dev/zero|character device 1:5"
  "/dev/tty|character device 5:0"
  "$T/file|a regular file"
  "$T/fifo|a FIFO"
  "$T/dir|a directory"
)

# ---- direct: penctl --port
for c in "${CASES[@]}"; do
  p=${c%%|*} what=${c#*|}
  run --port "$p" info
  assert_eq "$RC" "3" "penctl --port $p info: exit 3 (no such port)"
  assert_contains "$ERR" "$p is not a serial port ($what" "penctl says what $p is"
  run --port "$p" --json info
  assert_eq "$(jqo .error.code)" "no_port" "--json: $p is no port"
done
# A FIFO opened read-write would have echoed our own bytes back; nothing
# was written to it.
timeout 1 cat "$T/fifo" >"$T/fifo.out" 2>/dev/null &
sleep 0.2
exec 3>"$T/fifo"; exec 3>&-
wait
assert_eq "$(stat -c %s "$T/fifo.out")" "0" "nothing was written to the FIFO"

# ---- through penlinkd
start_emu pen --serial PEN-AT-1 --sessions 1 --session-bytes 20000
start_daemon
expect 0 "${D[@]}" --json audit --limit 1000
n0=$(jqo '.entries | length')
for c in "${CASES[@]}"; do
  p=${c%%|*} what=${c#*|}
  run "${D[@]}" attach "$p"
  assert_eq "$RC" "3" "attach $p through penlinkd: exit 3"
  assert_contains "$ERR" "$p is not a serial port ($what" "penlinkd says what $p is"
done
expect 0 "${D[@]}" --json list
assert_eq "$(jqo '.pens | length')" "0" "nothing was attached"
expect 0 "${D[@]}" --json audit --limit 1000
NEW=$(jq --argjson n "$n0" '.entries[: (.entries | length) - $n]' <<<"$OUT")
for c in "${CASES[@]}"; do
  p=${c%%|*}
  row=$(jq -c --arg p "$p" '[.[] | select(.action == "refused:attach" and .new_value.value == $p)][0]' <<<"$NEW")
  [ "$row" != null ] && ok "refused attach of $p audited" || fail "no refused:attach row for $p in: $NEW"
  assert_contains "$(jq -r .result <<<"$row")" "is not a serial port" "the audit row says why ($p)"
done
grep -q "refused attach for pid [0-9]* (.*): /dev/urandom is not a serial port" "$T/daemon.log" \
  && ok "the daemon log names the refused port" || { tail -n 20 "$T/daemon.log" >&2; fail "no log line for the refused attach"; }

# A pseudo-terminal is a port, directly and through the daemon.
expect 0 "${D[@]}" attach "$EMU_PORT"
wait_idle 1
expect 0 "${D[@]}" --json list
assert_eq "$(jqo '.pens[0].serial')" "PEN-AT-1" "a pty attaches through penlinkd"
expect 0 "${D[@]}" detach "$EMU_PORT"
expect 0 --port "$EMU_PORT" --json info
assert_eq "$(jqo .serial)" "PEN-AT-1" "and opens with penctl --port"
done_testing
