#!/usr/bin/env bash
# The central schema's guarantees outside penlinkd: penctl central init is
# idempotent, migrates a version-1 database to 2 and refuses a newer schema
# and a password; the ingest role may only insert (never update, delete or
# truncate: sessions, events, audit, annotations, pens), the read role only
# read;
# the tables are append-only even for their owner; the audit trail arrives
# hash-chained; penlinkd refuses a [central] it cannot use safely, and one
# whose database has no or a newer schema says so and keeps sessions.
. "$(dirname "$0")/lib.sh"

pg_init
URL="host=$PGSOCK dbname=$PGDB user=postgres"

# ---- penctl central init
# A database at version 1 (what an older penctl created): migration 001 by
# hand, with a session and an audit row sent then.
SCHEMA_DIR="$(dirname "$0")/../../central/schema"
psql_su -c "CREATE DATABASE v1" >/dev/null
psql_su -d v1 -f "$SCHEMA_DIR/001_initial.sql" >/dev/null || fail "cannot apply 001 by hand"
psql_su -d v1 -c "INSERT INTO penlink.schema_version (version, description) VALUES (1, '001_initial');
  INSERT INTO penlink.audit (site, local_id, utc_ms, uid, \"user\", pen, action, old_value, new_value, result)
    VALUES ('old', 1, 0, 0, 'u', 'PEN-OLD', 'attach', '{}', '{}', 'ok')" || fail "cannot fill the v1 database"
expect 0 --json central init "host=$PGSOCK dbname=v1 user=postgres"
assert_eq "$(jqo .from_version),$(jqo .schema_version)" "1,2" "init: a version-1 database migrated to 2"
assert_eq "$(psql_su -d v1 -c "SELECT count(*) FROM penlink.annotations") $(psql_su -d v1 -c "SELECT local_hash IS NULL FROM penlink.audit")" "0 t" "v1 -> 2: annotations added, old audit rows kept without site hashes"
expect 0 --central "host=$PGSOCK dbname=v1 user=postgres" audit verify
assert_contains "$OUT" "1 rows, chain intact" "audit verify of rows sent before the site hashes: central's chain only"

expect 0 --json central init "$URL"
assert_eq "$(jqo .from_version),$(jqo .schema_version)" "0,2" "init: schema 0 -> 2"
expect 0 --json central init "$URL"
assert_eq "$(jqo .applied)" "0" "init again: nothing applied"
expect 0 central init "$URL"
assert_contains "$OUT" "already at version 2" "init again says so"
assert_eq "$(psql_su -c "SELECT string_agg(version::text, ',' ORDER BY version) FROM penlink.schema_version")" "1,2" "one schema_version row per migration"
run central init "host=$PGSOCK dbname=$PGDB user=postgres password=hunter2"
[ "$RC" -ne 0 ] || fail "init accepted a password on the command line"
assert_contains "$ERR" "passfile" "init with a password: refused, pointing at a passfile"
case "$ERR" in *hunter2*) fail "the password was echoed: $ERR" ;; esac
ok "the password is not echoed"
run central init "postgresql://postgres:hunter2@localhost/$PGDB"
[ "$RC" -ne 0 ] || fail "init accepted a password in a URI"
case "$ERR" in *hunter2*) fail "the password was echoed: $ERR" ;; esac
ok "init with a password in a URI: refused, not echoed"

psql_su -c "CREATE ROLE site_a LOGIN IN ROLE penlink_ingest;
            CREATE ROLE reader LOGIN IN ROLE penlink_read;
            CREATE ROLE nobody LOGIN;" || fail "cannot create roles"

# ---- a site feeds it (sessions, events, audit entries from attach)
start_emu p --serial PEN-R-1 --flash "$T/p.flash" --sessions 2 --session-bytes 50000 --seed 61
start_site a
A=$SITE_PID
expect 0 --socket "$T/a.sock" attach "$EMU_PORT"
site_idle a 1
expect 0 --socket "$T/a.sock" detach "$EMU_PORT"
expect 0 --socket "$T/a.sock" attach "$EMU_PORT"
site_idle a 1
key=$(session_key a 0)
expect 0 --socket "$T/a.sock" sessions annotate "$key" --client C-7 --note "set-up"
site_synced a
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions")" "2" "2 sessions in central"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.annotations")" "1" "the annotation in central"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.pens")" "1" "the pen in central"
n_audit=$(sqlite3 "$T/a.db" "SELECT count(*) FROM audit")
[ "$n_audit" -gt 0 ] || fail "test set-up: no audit entries at the site"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.audit WHERE site = 'site-a'")" "$n_audit" "the site's $n_audit audit entries are in central"
assert_eq "$(psql_su -c "SELECT action FROM penlink.audit ORDER BY local_id LIMIT 1")" "$(sqlite3 "$T/a.db" "SELECT action FROM audit ORDER BY id LIMIT 1")" "audit entries arrive as written"
# The chain: each hash covers the previous one.
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.audit a WHERE a.prev_hash IS DISTINCT FROM (SELECT b.hash FROM penlink.audit b WHERE b.site = a.site AND b.local_id < a.local_id ORDER BY b.local_id DESC LIMIT 1)")" "0" "audit rows are hash-chained per site"

# ---- the ingest role
sid=$(psql_su -c "SELECT id FROM penlink.sessions LIMIT 1")
refused() { # refused ROLE SQL WHAT
  local out
  out=$(psql_as "$1" -c "$2" 2>&1) && fail "$3: allowed ($out)"
  case "$out" in *"permission denied"*|*"append-only"*) ok "$3: refused" ;; *) fail "$3: failed for another reason: $out" ;; esac
}
refused site_a "UPDATE penlink.sessions SET site = 'x'" "ingest: UPDATE sessions"
refused site_a "DELETE FROM penlink.sessions" "ingest: DELETE sessions"
refused site_a "TRUNCATE penlink.sessions" "ingest: TRUNCATE sessions"
refused site_a "UPDATE penlink.events SET value = 0" "ingest: UPDATE events"
refused site_a "DELETE FROM penlink.events" "ingest: DELETE events"
refused site_a "DELETE FROM penlink.audit" "ingest: DELETE audit"
refused site_a "UPDATE penlink.audit SET result = 'ok'" "ingest: UPDATE audit"
refused site_a "DELETE FROM penlink.conflicts" "ingest: DELETE conflicts"
refused site_a "UPDATE penlink.annotations SET client_ref = 'C-0'" "ingest: UPDATE annotations"
refused site_a "DELETE FROM penlink.annotations" "ingest: DELETE annotations"
refused site_a "TRUNCATE penlink.annotations" "ingest: TRUNCATE annotations"
refused site_a "SELECT note FROM penlink.annotations" "ingest: read annotations"
refused site_a "UPDATE penlink.pens SET model = 'x'" "ingest: UPDATE pens"
refused site_a "DELETE FROM penlink.pens" "ingest: DELETE pens"
refused site_a "SELECT model FROM penlink.pens_latest" "ingest: read pens"
refused site_a "UPDATE penlink.audit SET local_hash = NULL" "ingest: UPDATE the site hashes"
refused site_a "SELECT record FROM penlink.sessions LIMIT 1" "ingest: read records"
refused site_a "SELECT * FROM penlink.events LIMIT 1" "ingest: read events"
refused site_a "INSERT INTO penlink.schema_version VALUES (2, 'x')" "ingest: write schema_version"
# ---- the read role
refused reader "INSERT INTO penlink.sessions (site, serial, uuid, seq, size, sha256, rtc_time, start_ms, end_ms, archived_at, n_events, n_samples, record) VALUES ('x', 'x', gen_random_uuid(), 0, 0, encode(sha256(''), 'hex'), false, 0, 0, now(), 0, 0, '')" "read: INSERT sessions"
refused reader "UPDATE penlink.sessions SET site = 'x'" "read: UPDATE sessions"
refused reader "DELETE FROM penlink.sessions" "read: DELETE sessions"
refused reader "INSERT INTO penlink.audit (site, local_id, utc_ms, uid, \"user\", pen, action, old_value, new_value, result) VALUES ('x', 1, 0, 0, '', '', '', '', '', '')" "read: INSERT audit"
refused reader "DELETE FROM penlink.events" "read: DELETE events"
refused reader "INSERT INTO penlink.annotations (site, local_id, serial, uuid, utc_ms, uid, \"user\", client_ref, operator, note) SELECT 'x', 1, serial, uuid, 0, 0, '', 'C-0', '', '' FROM penlink.sessions LIMIT 1" "read: INSERT annotations"
refused reader "INSERT INTO penlink.pens (site, serial, model, hw_revision, fw_version, seen_at) VALUES ('x', 'x', '', '', '', now())" "read: INSERT pens"
assert_eq "$(psql_as reader -c "SELECT client_ref FROM penlink.annotations")" "C-7" "read: reads annotations"
assert_eq "$(psql_as reader -c "SELECT count(*) FROM penlink.pens_latest")" "1" "read: reads the pens"
[ "$(psql_as reader -c "SELECT count(*) FROM penlink.events WHERE session_id = $sid")" -gt 0 ] || fail "read: cannot read events"
ok "read: reads events"
assert_eq "$(psql_as reader -c "SELECT count(*) FROM penlink.sessions WHERE octet_length(record) = size")" "2" "read: reads records"
refused nobody "SELECT count(*) FROM penlink.sessions" "a role with neither: nothing"
# ---- append-only even for the owner
refused postgres "UPDATE penlink.sessions SET site = 'x'" "owner: UPDATE sessions"
refused postgres "DELETE FROM penlink.audit" "owner: DELETE audit"
refused postgres "TRUNCATE penlink.events" "owner: TRUNCATE events"
refused postgres "DELETE FROM penlink.annotations" "owner: DELETE annotations"
refused postgres "UPDATE penlink.pens SET model = 'x'" "owner: UPDATE pens"
# ---- central refuses bytes that do not match their digest
out=$(psql_su -c "INSERT INTO penlink.sessions (site, serial, uuid, seq, size, sha256, rtc_time, start_ms, end_ms, archived_at, n_events, n_samples, record) VALUES ('x', 'x', gen_random_uuid(), 0, 1, encode(sha256('a'), 'hex'), false, 0, 0, now(), 0, 0, 'b')" 2>&1) && fail "a record not matching its digest was stored"
assert_contains "$out" "sessions_record_digest" "a record not matching its digest is refused"
stop_site "$A"

# ---- penlinkd's [central] checks
cfg() { # cfg LINES: penlinkd's exit status with that [central]; its output in $T/bad.out
  printf '[central]\n%s\n' "$1" >"$T/bad.conf"
  "$PENLINKD" --foreground --no-usb --socket "$T/bad.sock" --db "$T/bad.db" --config "$T/bad.conf" >"$T/bad.out" 2>&1
  echo "$?"
}
assert_eq "$(cfg "url = host=$PGSOCK password=hunter2"$'\n'"site = x")" "2" "penlinkd: a password in url is a configuration error"
assert_contains "$(cat "$T/bad.out")" "bad.conf:2: [central] url:" "penlinkd: the error names file, line and key"
case "$(cat "$T/bad.out")" in *hunter2*) fail "penlinkd echoed the password: $(cat "$T/bad.out")" ;; esac
ok "penlinkd does not echo the password"
assert_eq "$(cfg "url = host=$PGSOCK")" "2" "penlinkd: url without site refused"
assert_contains "$(cat "$T/bad.out")" "site: missing" "penlinkd: says site is missing"
assert_eq "$(cfg "url = host=$PGSOCK"$'\n'"site = a b")" "2" "penlinkd: a bad site name refused"
assert_eq "$(cfg "url = nonsense"$'\n'"site = x")" "2" "penlinkd: an unparsable url refused"
assert_eq "$(cfg "colour = red")" "2" "penlinkd: unknown [central] key refused"

# ---- a database penlinkd cannot use: it says why and keeps the sessions
psql_su -c "CREATE DATABASE empty" >/dev/null
cat >"$T/e.conf" <<EOF2
[central]
url = host=$PGSOCK dbname=empty user=site_a
site = site-e
retry_max_s = 1
EOF2
"$PENLINKD" --foreground --no-usb --socket "$T/e.sock" --db "$T/e.db" --config "$T/e.conf" >"$T/e.log" 2>&1 &
E=$!
SITE_PIDS+=("$E")
for i in $(seq 100); do grep -q "no penlink schema" "$T/e.log" && break; sleep 0.1; done
assert_contains "$(cat "$T/e.log")" "penctl central init" "no schema: the log says to run penctl central init"
stop_site "$E"

# A schema at the right version that someone altered by hand: the
# statements penlinkd prepares on connecting say which one fails and why.
psql_su -c "CREATE DATABASE altered" >/dev/null
expect 0 central init "host=$PGSOCK dbname=altered user=postgres"
psql_su -d altered -c "ALTER TABLE penlink.pens DROP COLUMN fw_version CASCADE" >/dev/null || fail "cannot alter the schema"
sed 's/dbname=empty/dbname=altered/' "$T/e.conf" >"$T/alt.conf"
"$PENLINKD" --foreground --no-usb --socket "$T/alt.sock" --db "$T/alt.db" --config "$T/alt.conf" >"$T/alt.log" 2>&1 &
ALT=$!
SITE_PIDS+=("$ALT")
for i in $(seq 100); do grep -q "cannot prepare" "$T/alt.log" && break; sleep 0.1; done
assert_contains "$(cat "$T/alt.log")" "cannot prepare statement penlink_pen: 42703" "an altered schema: the log names the statement and the SQLSTATE"
assert_contains "$(cat "$T/alt.log")" "fw_version" "... and what is missing"
stop_site "$ALT"

psql_su -c "INSERT INTO penlink.schema_version VALUES (99, 'from the future')"
: >"$T/a.log"
start_site a
A=$SITE_PID
for i in $(seq 100); do grep -q "newer than this penlinkd" "$T/a.log" && break; sleep 0.1; done
assert_contains "$(cat "$T/a.log")" "version 99, newer than this penlinkd knows (2)" "a newer central schema: penlinkd says so"
central_status a
assert_contains "$(jqo .last_error)" "newer" "status shows it"
stop_site "$A"
run central init "$URL"
[ "$RC" -ne 0 ] || fail "init accepted a newer schema"
assert_contains "$ERR" "schema version 99, newer than this penctl knows (2)" "init refuses a newer schema"
done_testing
