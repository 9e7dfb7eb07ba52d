#!/usr/bin/env bash
# Two sites, each a penlinkd with its own pens and SQLite archive, feed one
# central PostgreSQL: every session is stored once, under its (serial, uuid),
# with the digest and the bytes of the sites' archives.  A pen that moved
# between sites (the same sessions at both) is stored once; pens with equal
# UUIDs but different serials (penemu's default seed) are different sessions.
. "$(dirname "$0")/lib.sh"

pg_init
central_init
ok "central initialized"

# Site A: two pens.  Site B: a pen of its own, with the same seed as A's
# first (equal UUIDs, other serial), and the very pen A's second is (moved).
start_emu a1 --serial PEN-CA-1 --flash "$T/a1.flash" --sessions 4 --session-bytes 200000 --seed 31
PA1=$EMU_PORT
start_emu a2 --serial PEN-MOVED --flash "$T/a2.flash" --sessions 3 --session-bytes 150000 --seed 32
PA2=$EMU_PORT
start_emu b1 --serial PEN-CB-1 --flash "$T/b1.flash" --sessions 4 --session-bytes 200000 --seed 31
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
stop_site "$A"
stop_site "$B"
ok "both sites stop cleanly"
done_testing
