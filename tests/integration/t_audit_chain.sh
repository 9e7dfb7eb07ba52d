#!/usr/bin/env bash
# The audit trail is complete and tamper-evident: every change, refusal and
# read of records through penlinkd is a row with who, which pen, old and new
# values as JSON objects and the result; the rows are hash-chained, and
# `audit verify` (through the daemon and on the file with --db) names the
# first row that was removed, changed or moved behind the daemon's back.
. "$(dirname "$0")/lib.sh"

chmod 0755 "$T"
start_emu a --serial PEN-AU-1 --sessions 2 --session-bytes 20000
cat >"$T/penlinkd.conf" <<CONF
[daemon]
socket_mode = 0666

[policy]
confirm_above_mm = 1.5
CONF
start_daemon --config "$T/penlinkd.conf" --port "$EMU_PORT"
wait_idle 1

# ---- every kind of audited action, through the daemon
expect 0 "${D[@]}" clock sync
expect 0 "${D[@]}" preset push --id 1 --name "Forehead fine" --depth 0.75 --speed 2 --area forehead
run "${D[@]}" preset push --id 3 --name "Scar deep" --depth 2.25 --speed 1 --area body-scar
assert_eq "$RC" "4" "a push over the confirmation threshold is refused"
run "${D[@]}" attach /dev/null
[ "$RC" -ne 0 ] && ok "attach of /dev/null refused (exit $RC)" || fail "attach /dev/null succeeded"
expect 0 "${D[@]}" sessions export --format csv --out "$T/all.csv"
expect 0 "${D[@]}" sessions pull --out "$T/pulled"
expect 0 "${D[@]}" --json sessions list
uuid=$(jqo '.sessions[0].uuid')
expect 0 "${D[@]}" sessions show "PEN-AU-1/$uuid"
cp "$PENCTL" "$T/penctl-copy" && chmod 0755 "$T/penctl-copy"
setpriv --reuid=65534 --regid=65534 --clear-groups "$T/penctl-copy" "${D[@]}" sessions list >/dev/null 2>&1
[ $? -eq 5 ] && ok "nobody may not list sessions" || fail "nobody listed sessions"

expect 0 "${D[@]}" --json audit --limit 1000
echo "$OUT" >"$T/audit.json"
has() { jq -e "$1" "$T/audit.json" >/dev/null || fail "$2: $(jq -c '[.entries[] | {action, result}]' "$T/audit.json")"; ok "$2"; }
has '[.entries[] | select(.action == "clock.sync" and .user != "penlinkd" and .result == "ok" and .pen == "PEN-AU-1" and (.new_value.utc_ms | type) == "number" and (.old_value | has("offset_ms")))] | length == 1' \
  "clock sync audited with the clock before and the time set"
has '[.entries[] | select(.action == "clock.sync" and .user == "penlinkd" and .result == "ok" and .pen == "PEN-AU-1" and (.old_value | has("offset_ms")))] | length >= 1' \
  "the daemon's own clock sync at attach is audited too"
has '[.entries[] | select(.action == "presets.push" and .result == "ok" and .user == "root" and (.old_value.presets | type) == "array" and ([.new_value.presets[] | select(.id == 1)][0].depth_mm == 0.75))] | length == 1' \
  "preset push audited with old and new sets as objects"
has '[.entries[] | select(.action == "refused:presets.push" and (.result | contains("--confirm")) and ([.new_value.presets[] | select(.id == 3)][0].depth_mm == 2.25))] | length == 1' \
  "policy refusal audited with what was tried"
has '[.entries[] | select((.action | endswith("attach")) and .result != "ok" and .new_value.value == "/dev/null")] | length == 1' \
  "refused attach audited"
has '[.entries[] | select(.action == "sessions.export" and .result == "ok" and .new_value.format == "csv" and .new_value.sessions == 2)] | length == 1' \
  "export audited: format and how many sessions left"
has '[.entries[] | select(.action == "sessions.pull" and .result == "ok" and .new_value.bytes == .new_value.size)] | length == 2' \
  "each pulled record audited"
has "[.entries[] | select(.action == \"sessions.show\" and .new_value.uuid == \"$uuid\" and .result == \"ok\")] | length == 1" \
  "show through the daemon audited"
has '[.entries[] | select(.action == "denied:sessions.list" and .user == "nobody")] | length == 1' \
  "access refusal audited"
has '[.entries[] | (.old_value | type), (.new_value | type)] | all(. == "object" or . == "null")' \
  "every old and new value is a JSON object (or null)"
has '[.entries[] | .hash | test("^[0-9a-f]{64}$")] | all' "every row carries its hash"
assert_eq "$(sqlite3 "$DB" "SELECT count(*) FROM audit WHERE old_value LIKE '%'||char(10)||'%' OR new_value LIKE '%'||char(10)||'%'")" "0" \
  "no stored value is a pretty-printed string"

# ---- what changed, for people
expect 0 "${D[@]}" audit
assert_contains "$OUT" "preset 1 depth 0.50 → 0.75 mm" "the table shows the depth change"
assert_contains "$OUT" "refused:presets.push" "the table lists the refusal"
assert_contains "$OUT" "csv, 2 sessions" "the table says what an export took"

# ---- verification of an untouched trail
expect 0 "${D[@]}" audit verify
n=$(jq '.entries | length' "$T/audit.json")
assert_contains "$OUT" "rows, chain intact" "audit verify: chain intact"
expect 0 "${D[@]}" --json audit verify
assert_eq "$(jqo .intact)" "true" "--json: intact"
[ "$(jqo .rows)" -ge "$n" ] && ok "every row checked ($(jqo .rows))" || fail "rows $(jqo .rows) < $n"
head=$(jqo .head)
expect 0 "${D[@]}" audit verify --head "$head"
assert_contains "$OUT" "chain intact" "the noted head is in the chain"

kill "$DAEMON_PID"; wait "$DAEMON_PID"
sqlite3 "$DB" ".backup '$T/clean.db'"
rows=$(sqlite3 "$T/clean.db" "SELECT count(*) FROM audit")
[ "$rows" -ge 8 ] && ok "$rows rows to tamper with" || fail "only $rows rows"
expect 0 audit verify --db "$T/clean.db"
assert_contains "$OUT" "$rows rows, chain intact" "verify --db on the file: intact"

# tamper SQL WANT_ROW WANT_TEXT: the archive edited as an attacker with the
# file would (dropping the append-only triggers first), then verified
# through a restarted daemon and directly.
tamper() {
  rm -f "$DB" "$DB-wal" "$DB-shm"
  cp "$T/clean.db" "$DB"
  sqlite3 "$DB" "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete; $1" ||
    fail "sqlite3: $1"
  start_daemon --config "$T/penlinkd.conf"
  run "${D[@]}" audit verify
  assert_eq "$RC" "8" "$4: audit verify exits 8"
  assert_contains "$ERR" "first bad row $2: " "$4: names row $2"
  assert_contains "$ERR" "$3" "$4: says why"
  run "${D[@]}" --json audit verify
  assert_eq "$(jqo .verify.bad_row)" "$2" "$4: --json bad_row"
  assert_eq "$(jqo .error.exit_code)" "8" "$4: --json exit code"
  kill "$DAEMON_PID"; wait "$DAEMON_PID"
  run audit verify --db "$DB"
  assert_eq "$RC" "8" "$4: verify --db exits 8"
  assert_contains "$ERR" "first bad row $2: " "$4: verify --db names row $2"
}

tamper "DELETE FROM audit WHERE id = 3;" 4 "row 3 was removed" "deleted row"
tamper "UPDATE audit SET result = 'ok' WHERE action = 'refused:presets.push';" \
  "$(sqlite3 "$T/clean.db" "SELECT id FROM audit WHERE action = 'refused:presets.push'")" \
  "was changed" "changed result"
tamper "UPDATE audit SET new_value = replace(new_value, '0.75', '0.5') WHERE action = 'presets.push';" \
  "$(sqlite3 "$T/clean.db" "SELECT id FROM audit WHERE action = 'presets.push'")" \
  "was changed" "changed value"
tamper "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE id IN (4, 5);
        UPDATE audit SET (utc_ms, uid, user, pen, action, old_value, new_value, result, prev_hash, hash) =
          (SELECT utc_ms, uid, user, pen, action, old_value, new_value, result, prev_hash, hash
           FROM t WHERE t.id = 9 - audit.id) WHERE id IN (4, 5);" 4 "was changed" "two rows swapped"
tamper "UPDATE audit SET id = -id WHERE id IN (4, 5); UPDATE audit SET id = 5 WHERE id = -4;
        UPDATE audit SET id = 4 WHERE id = -5;" 4 "was changed" "two rows swapped by id"

# The last row removed: the chain is whole again, but not the head noted
# before.
rm -f "$DB" "$DB-wal" "$DB-shm"
cp "$T/clean.db" "$DB"
sqlite3 "$DB" "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = (SELECT max(id) FROM audit);"
start_daemon --config "$T/penlinkd.conf"
expect 0 "${D[@]}" audit verify
run "${D[@]}" audit verify --head "$head"
assert_eq "$RC" "8" "a removed last row: the noted head is missing (exit 8)"
assert_contains "$ERR" "not in the chain" "says the head is gone"
kill "$DAEMON_PID"; wait "$DAEMON_PID"

# Untouched, the daemon chains on after a restart.
rm -f "$DB" "$DB-wal" "$DB-shm"
cp "$T/clean.db" "$DB"
start_daemon --config "$T/penlinkd.conf" --port "$EMU_PORT"
wait_idle 1
expect 0 "${D[@]}" clock sync
expect 0 "${D[@]}" --json audit verify
assert_eq "$(jqo .intact)" "true" "after a restart and more changes: intact"
[ "$(jqo .rows)" -gt "$rows" ] && ok "new rows chained on" || fail "rows $(jqo .rows)"
done_testing
