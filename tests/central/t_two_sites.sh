#!/usr/bin/env bash
# Two sites, each a penlinkd with its own pens and SQLite archive, feed one
# central PostgreSQL: every session is stored once, under its (serial, uuid),
# with the digest and the bytes of the sites' archives.  A pen that moved
# between sites (the same sessions at both) is stored once; pens with equal
# UUIDs but different serials (penemu --uuid-serial) are different sessions.
# Annotations written at either site reach central (the moved pen's session
# carries both sites'), the pens' model and versions too (the latest per
# site and pen, as each site's pens table has it), and each audit row keeps
# its hashes in the site's own chain, equal to the site's.
. "$(dirname "$0")/lib.sh"

pg_init
central_init
ok "central initialized"

# Site A: two pens.  Site B: a pen of its own, with the same seed as A's
# first and its UUIDs (--uuid-serial: equal UUIDs, other serial), and the very
# pen A's second is (moved).
start_emu a1 --serial PEN-CA-1 --model "PL-Pen A" --flash "$T/a1.flash" --sessions 4 --session-bytes 200000 --seed 31
PA1=$EMU_PORT
start_emu a2 --serial PEN-MOVED --flash "$T/a2.flash" --sessions 3 --session-bytes 150000 --seed 32
PA2=$EMU_PORT
start_emu b1 --serial PEN-CB-1 --uuid-serial PEN-CA-1 --model "PL-Pen B" --flash "$T/b1.flash" --sessions 4 --session-bytes 200000 --seed 31
PB1=$EMU_PORT
start_emu b2 --serial PEN-MOVED --flash "$T/b2.flash" --sessions 3 --session-bytes 150000 --seed 32
PB2=$EMU_PORT

start_site a --port "$PA1" --port "$PA2"
A=$SITE_PID
start_site b --port "$PB1" --port "$PB2"
B=$SITE_PID
site_idle a 2
site_idle b 2
ok "both sites archived their pens locally"
site_synced a
site_synced b
ok "both outboxes drained"

central_status a
assert_eq "$(jqo .configured)" "true" "status: configured"
assert_eq "$(jqo .connected)" "true" "status: connected"
assert_eq "$(jqo .site)" "site-a" "status: site"
assert_eq "$(jqo .confirmed)" "7" "status: 7 confirmed at site a"
assert_eq "$(jqo .conflicts)" "0" "status: no conflicts"
[ "$(jqo .last_sync_utc)" != "null" ] || fail "no last sync time"
ok "status: last sync $(jqo .last_sync_utc)"
assert_eq "$(jqo .last_error)" "" "status: no error"

# 4 + 3 at A, 4 at B, and B's 3 moved sessions are A's 3: 11 sessions.
want=$( { local_digests a; local_digests b; } | sort -u)
got=$(central_digests)
assert_eq "$(wc -l <<<"$got")" "11" "central holds 11 sessions"
assert_eq "$got" "$want" "central's (serial, uuid, sha256) are the union of the sites' archives"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE serial = 'PEN-MOVED'")" "3" "the moved pen's sessions stored once"
assert_eq "$(psql_su -c "SELECT count(DISTINCT uuid) FROM penlink.sessions WHERE serial IN ('PEN-CA-1', 'PEN-CB-1')")" "4" "equal UUIDs of two pens are different sessions"
records_equal a
records_equal b
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE encode(sha256(record), 'hex') <> sha256 OR octet_length(record) <> size")" "0" "every central record matches its digest and size"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.conflicts")" "0" "no conflicts recorded"
grep -q "already there from site site-" "$T/a.log" "$T/b.log" || fail "the moved pen's sessions were not logged as stored once"
ok "the second delivery of the moved pen's sessions was logged as stored once"

# Decoded columns and events came along.
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE summary IS NULL OR n_events = 0")" "0" "every session decoded, with events"
assert_eq "$(psql_su -c "SELECT bool_and(n_events = (SELECT count(*) FROM penlink.events e WHERE e.session_id = s.id)) FROM penlink.sessions s")" "t" "event rows match each session's count"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE summary->>'uuid' <> uuid::text")" "0" "summary JSON is the session's"

# Annotations at both sites, through penlinkd; the moved pen's first
# session is annotated at each.
moved=$(sqlite3 "$T/a.db" "SELECT seq FROM sessions WHERE serial = 'PEN-MOVED' ORDER BY seq LIMIT 1")
# Site a's own pen's first session (the archive's order between its two
# pens depends on which downloads first).
KA=$(sqlite3 "$T/a.db" "SELECT serial || '/' || lower(substr(hex(uuid),1,8) || '-' ||
    substr(hex(uuid),9,4) || '-' || substr(hex(uuid),13,4) || '-' ||
    substr(hex(uuid),17,4) || '-' || substr(hex(uuid),21)) FROM sessions WHERE serial = 'PEN-CA-1' ORDER BY seq LIMIT 1")
KM=$(sqlite3 "$T/a.db" "SELECT serial || '/' || lower(substr(hex(uuid),1,8) || '-' ||
    substr(hex(uuid),9,4) || '-' || substr(hex(uuid),13,4) || '-' ||
    substr(hex(uuid),17,4) || '-' || substr(hex(uuid),21)) FROM sessions WHERE serial = 'PEN-MOVED' AND seq = $moved")
expect 0 --socket "$T/a.sock" sessions annotate "$KA" --client C-1 --operator ana --note "first visit"
expect 0 --socket "$T/a.sock" sessions annotate "$KM" --client C-2 --operator ana
expect 0 --socket "$T/b.sock" sessions annotate "$KM" --operator bo --note "touch-up at site b"
site_synced a
site_synced b
assert_eq "$(psql_su -c "SELECT site || ':' || local_id || ':' || client_ref || ':' || operator || ':' || note FROM penlink.annotations WHERE serial || '/' || uuid = '$KA'")" \
  "site-a:1:C-1:ana:first visit" "central: site a's annotation, under its id there"
assert_eq "$(psql_su -c "SELECT string_agg(site || ':' || operator, ',' ORDER BY site) FROM penlink.annotations WHERE serial || '/' || uuid = '$KM'")" \
  "site-a:ana,site-b:bo" "central: the moved pen's session has both sites' annotations"
C=(--central "host=$PGSOCK dbname=$PGDB user=reader")
expect 0 "${C[@]}" --json sessions show "$KM"
assert_eq "$(jqo '[.annotations[].operator] | join(",")')" "ana,bo" "penctl --central show: both, oldest first"
expect 0 "${C[@]}" --json sessions list --client C-2
assert_eq "$(jqo '[.sessions[] | "\(.serial)/\(.uuid)"] | join(",")')" "$KM" "penctl --central list --client C-2"
expect 0 "${C[@]}" --json -s PEN-MOVED sessions export --format json
assert_eq "$(jq --arg u "${KM#*/}" '.[] | select(.uuid == $u) | .annotations | length' <<<"$OUT")" "2" "export: both sites' annotations"

# The pens: central's latest per site and serial is each site's pens table.
for s in a b; do
  assert_eq "$(psql_su -c "SELECT string_agg(serial || ':' || model || ':' || hw_revision || ':' || fw_version, ',' ORDER BY serial) FROM penlink.pens_latest WHERE site = 'site-$s'")" \
    "$(sqlite3 "$T/$s.db" "SELECT group_concat(serial || ':' || model || ':' || hw_revision || ':' || fw_version, ',') FROM (SELECT * FROM pens ORDER BY serial)")" \
    "central's pens of site $s are the site's"
done
assert_eq "$(psql_su -c "SELECT model FROM penlink.pens_latest WHERE site = 'site-b' AND serial = 'PEN-CB-1'")" "PL-Pen B" "the model a site reported"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.pens")" "4" "one history row per pen and site (nothing changed since)"

# The audit trail: each row's hashes in central are the site's.
for s in a b; do
  n=$(sqlite3 "$T/$s.db" "SELECT count(*) FROM audit")
  [ "$n" -gt 0 ] || fail "site $s has no audit rows"
  assert_eq "$(psql_su -c "SELECT string_agg(local_id || ':' || local_prev_hash || ':' || local_hash, ',' ORDER BY local_id) FROM penlink.audit WHERE site = 'site-$s'")" \
    "$(sqlite3 "$T/$s.db" "SELECT group_concat(id || ':' || prev_hash || ':' || hash, ',') FROM (SELECT * FROM audit ORDER BY id)")" \
    "site $s: central's $n audit rows carry the site's own hashes"
  expect 0 "${C[@]}" --site "site-$s" --json audit verify
  assert_eq "$(jqo .head)" "$(sqlite3 "$T/$s.db" "SELECT hash FROM audit ORDER BY id DESC LIMIT 1")" "site $s: central verify's head is the site's"
done

# A reader sees it all; nothing is sent twice after a restart.
assert_eq "$(psql_as reader -c "SELECT count(*) FROM penlink.sessions")" "11" "the read role reads the sessions"
stop_site "$A"
start_site a --port "$PA1" --port "$PA2"
A=$SITE_PID
site_idle a 2
site_synced a
central_status a
assert_eq "$(jqo .confirmed)" "7" "after a restart: still 7 confirmed, nothing queued again"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions")" "11" "after a restart: central still holds 11"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.annotations")" "3" "after a restart: still 3 annotations"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.pens")" "4" "after a restart: the pens, unchanged, not sent again"
stop_site "$A"
stop_site "$B"
ok "both sites stop cleanly"
done_testing
