#!/usr/bin/env bash
# penlinkd archives every session of every attached pen exactly once,
# verified, and tells each pen it may reclaim them; the archive lists,
# shows and exports them with the pens' values.
. "$(dirname "$0")/lib.sh"

start_emu a --serial PEN-DA-1 --flash "$T/a.flash" --sessions 3 --session-bytes 300000 --seed 21
PA=$EMU_PORT
start_emu b --serial PEN-DA-2 --flash "$T/b.flash" --sessions 2 --session-bytes 500000 --seed 22
PB=$EMU_PORT

# What the pens hold, read directly before the daemon takes the ports.
expect 0 --port "$PA" --json sessions list; echo "$OUT" >"$T/a.json"
expect 0 --port "$PB" --json sessions list; echo "$OUT" >"$T/b.json"

start_daemon --port "$PA" --port "$PB"
wait_idle 2
ok "both pens attached and idle"

expect 0 "${D[@]}" --json list
assert_eq "$(jqo '[.pens[].serial] | sort | join(",")')" "PEN-DA-1,PEN-DA-2" "list names both pens"
assert_eq "$(jqo '[.pens[].sessions_pending] | add')" "0" "nothing pending"

expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "5" "five sessions archived, none twice"
for f in a b; do
  for uuid in $(jq -r '.sessions[].uuid' "$T/$f.json"); do
    want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$T/$f.json")
    got=$(jqo ".sessions[] | select(.uuid == \"$uuid\") | .sha256")
    assert_eq "$got" "$want" "archived digest of $uuid equals the pen's"
  done
done

# The records themselves: pull them out of the archive and hash them.
expect 0 "${D[@]}" --json sessions pull --out "$T/out"
assert_eq "$(jqo '.pulled | length')" "5" "five records copied out of the archive"
for f in a b; do
  for uuid in $(jq -r '.sessions[].uuid' "$T/$f.json"); do
    want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$T/$f.json")
    assert_eq "$(sha256sum "$T"/out/*"$uuid".plrec | cut -d' ' -f1)" "$want" "record $uuid intact byte for byte"
  done
done

# show by UUID, from the archive.
uuid=$(jq -r '.sessions[0].uuid' "$T/b.json")
expect 0 "${D[@]}" --json sessions show "$uuid"
assert_eq "$(jqo .uuid)" "$uuid" "show by uuid"
assert_eq "$(jqo .serial)" "PEN-DA-2" "show: serial"

# Export, field by field against the pens' own lists.
expect 0 "${D[@]}" sessions export --format csv
echo "$OUT" >"$T/export.csv"
assert_eq "$(head -n1 "$T/export.csv" | cut -d, -f1-3)" "serial,uuid,seq" "CSV header"
assert_eq "$(($(wc -l <"$T/export.csv") - 1))" "5" "CSV: one row per session"
for f in a b; do
  n=$(jq '.sessions | length' "$T/$f.json")
  for i in $(seq 0 $((n - 1))); do
    uuid=$(jq -r ".sessions[$i].uuid" "$T/$f.json"); seq=$(jq -r ".sessions[$i].seq" "$T/$f.json")
    size=$(jq -r ".sessions[$i].size" "$T/$f.json"); sha=$(jq -r ".sessions[$i].sha256" "$T/$f.json")
    row=$(grep ",$uuid," "$T/export.csv") || fail "no CSV row for $uuid"
    assert_eq "$(cut -d, -f3 <<<"$row")" "$seq" "CSV seq of $uuid"
    assert_contains "$row" ",$size,$sha," "CSV size and sha256 of $uuid"
  done
done
expect 0 "${D[@]}" sessions export --format json
echo "$OUT" >"$T/export.json"
assert_eq "$(jq 'length' "$T/export.json")" "5" "JSON export: five objects"
uuid=$(jq -r '.sessions[1].uuid' "$T/a.json")
assert_eq "$(jq -r ".[] | select(.uuid == \"$uuid\") | .serial" "$T/export.json")" "PEN-DA-1" "JSON export: serial"
assert_eq "$(jq -r ".[] | select(.uuid == \"$uuid\") | .sha256" "$T/export.json")" "$(jq -r '.sessions[1].sha256' "$T/a.json")" "JSON export: sha256"
assert_eq "$(jq -r ".[] | select(.uuid == \"$uuid\") | .events | length > 0" "$T/export.json")" "true" "JSON export: events decoded"

expect 0 "${D[@]}" --json sessions export --format csv -s PEN-DA-2
assert_eq "$(grep -c PEN-DA-1 <<<"$OUT" || true)" "0" "export filtered by serial"

# The pens were told they may reclaim: read them directly after the daemon
# lets go of the ports.
expect 0 "${D[@]}" detach "$PA"
expect 0 "${D[@]}" detach "$PB"
expect 0 --port "$PA" --json sessions list
assert_eq "$(jqo '[.sessions[].archived] | all')" "true" "pen A: every session archived on the pen"
expect 0 --port "$PB" --json sessions list
assert_eq "$(jqo '[.sessions[].archived] | all')" "true" "pen B: every session archived on the pen"

# Re-attach: nothing is downloaded again.
expect 0 "${D[@]}" attach "$PA"
wait_idle 1
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "5" "re-attach archives nothing twice"

# A record damaged in the archive file (a disk, a hand with sqlite3): pull
# leaves it out, names it, copies the others and ends in exit 8, so one bad
# row cannot stop every later pull at the same place.
bad=$(jq -r '.sessions[1].uuid' "$T/a.json")
sqlite3 "$DB" "UPDATE sessions SET record = CAST(zeroblob(length(record)) AS BLOB)
  WHERE lower(hex(uuid)) = '${bad//-/}'" || fail "cannot damage the record"
run "${D[@]}" --json sessions pull --out "$T/out2"
assert_eq "$RC" "8" "pull with a damaged record: exit 8"
assert_eq "$(jqo '.damaged | map(.uuid) | join(",")'),$(jqo '.pulled | length')" "$bad,4" \
  "pull --json: the damaged record listed apart, the other four pulled"
ls "$T/out2" | grep -q "$bad" && fail "the damaged record was written" || ok "the damaged record was not written"
run "${D[@]}" sessions pull --out "$T/out2"
assert_contains "$ERR" "session PEN-DA-1/$bad: " "pull: the warning names the session"
assert_contains "$ERR" "1 session did not match its SHA-256 and was not written (named above); 0 pulled, 4 already present" \
  "pull: the last line counts what was done"

# A row whose numbers the model cannot hold (sequence number -1, written
# by hand): an error naming the row, not -1 listed as 4294967295.
sqlite3 "$DB" "INSERT INTO sessions (serial, uuid, seq, size, sha256, start_ms, end_ms,
  rtc_time, archived_ms, record) SELECT char(80, 27, 91, 50, 74, 88), randomblob(16), -1,
  size, sha256, start_ms, end_ms, rtc_time, archived_ms, record FROM sessions LIMIT 1" ||
  fail "cannot write the row"
rowid=$(sqlite3 "$DB" "SELECT id FROM sessions WHERE seq = -1")
run "${D[@]}" sessions list
assert_eq "$RC" "1" "list with a row out of range: exit 1"
assert_contains "$ERR" 'session P\x1b[2JX/' "the error names the row's session, escaped"
assert_contains "$ERR" "(row $rowid) in $DB: sequence number -1 is outside 0..4294967295" \
  "... its row in the archive and the value"
sqlite3 "$DB" "DELETE FROM sessions WHERE id = $rowid" || fail "cannot remove the row"
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "5" "the row removed, the archive lists again"

kill "$DAEMON_PID"; wait "$DAEMON_PID"; rc=$?
assert_eq "$rc" "0" "SIGTERM: penlinkd exits 0"
[ -S "$SOCK" ] && fail "socket left behind"
ok "socket removed on exit"
done_testing
