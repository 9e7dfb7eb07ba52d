#!/usr/bin/env bash
# A different record under a (serial, uuid) central already holds is never
# silent and never overwrites central: site b's pen carries site a's pen's
# serial and seed (equal UUIDs) but records of another size, so other bytes
# and digests.  Central keeps site a's records; site b logs each conflict
# with both digests, keeps its records locally, marks them conflict (not
# retried), and central records them in penlink.conflicts.  Sessions without
# a clash still go through; an annotation of a session in conflict stays at
# the site.
. "$(dirname "$0")/lib.sh"

pg_init
central_init
start_emu a --serial PEN-K --flash "$T/a.flash" --sessions 3 --session-bytes 120000 --seed 51
start_site a --port "$EMU_PORT"
A=$SITE_PID
site_idle a 1
site_synced a
before=$(psql_su -c "SELECT serial || ' ' || uuid || ' ' || sha256 || ' ' || md5(record) FROM penlink.sessions ORDER BY 1")
ok "site a delivered PEN-K's 3 sessions"

# Site b: the impostor (same serial, same UUIDs, other bytes) and a pen of
# its own.
start_emu b --serial PEN-K --flash "$T/b.flash" --sessions 3 --session-bytes 90000 --seed 51
PB=$EMU_PORT
start_emu b2 --serial PEN-KB --flash "$T/b2.flash" --sessions 2 --session-bytes 50000 --seed 52
start_site b --port "$PB" --port "$EMU_PORT"
B=$SITE_PID
site_idle b 2
site_synced b
central_status b
assert_eq "$(jqo .conflicts)" "3" "site b: 3 sessions marked conflict"
assert_eq "$(jqo .confirmed)" "2" "site b: its own pen's 2 sessions confirmed"
assert_eq "$(jqo .pending)" "0" "site b: conflicts are not retried (nothing pending)"

after=$(psql_su -c "SELECT serial || ' ' || uuid || ' ' || sha256 || ' ' || md5(record) FROM penlink.sessions WHERE serial = 'PEN-K' ORDER BY 1")
assert_eq "$after" "$before" "central keeps site a's records, bytes and digests untouched"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions")" "5" "central: 3 + 2 sessions"
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE site = 'site-a' AND serial = 'PEN-K'")" "3" "the PEN-K rows are still site a's"

# Logged with serial, uuid and both digests, for each.
for line in $(local_digests b | grep '^PEN-K ' | tr ' ' ','); do
  IFS=, read -r serial uuid sha <<<"$line"
  central_sha=$(psql_su -c "SELECT sha256 FROM penlink.sessions WHERE serial = '$serial' AND uuid = '$uuid'")
  [ "$central_sha" != "$sha" ] || fail "test set-up: $uuid has the same digest at both sites"
  grep "CONFLICT for session $serial/$uuid" "$T/b.log" | grep -q "central holds sha256 $central_sha, this site's archive $sha" ||
    fail "no conflict line for $serial/$uuid with both digests in site b's log"
  assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.conflicts WHERE site = 'site-b' AND serial = '$serial' AND uuid = '$uuid' AND central_sha256 = '$central_sha' AND offered_sha256 = '$sha'")" "1" "conflict $uuid recorded in central with both digests"
done
assert_eq "$(sqlite3 "$T/b.db" "SELECT count(*) FROM sessions WHERE serial = 'PEN-K'")" "3" "site b keeps its conflicting records locally"
assert_eq "$(sqlite3 "$T/b.db" "SELECT count(*) FROM central_outbox WHERE state = 2 AND note LIKE 'central sha256 %'")" "3" "site b's outbox marks them conflict with central's digest"

# Audited at the site, and through it in central's audit trail.
assert_eq "$(sqlite3 "$T/b.db" "SELECT count(*) FROM audit WHERE action = 'central.conflict' AND pen = 'PEN-K' AND result LIKE 'refused%'")" "3" "site b audited each conflict"
site_synced b
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.audit WHERE site = 'site-b' AND action = 'central.conflict'")" "3" "the conflicts reached central's audit trail"

# Annotations at site b: one of a session in conflict stays local (central
# holds site a's record under that key, not the one annotated), one of its
# own pen's session reaches central.
KK=$(sqlite3 "$T/b.db" "SELECT serial || '/' || lower(substr(hex(uuid),1,8) || '-' ||
    substr(hex(uuid),9,4) || '-' || substr(hex(uuid),13,4) || '-' ||
    substr(hex(uuid),17,4) || '-' || substr(hex(uuid),21)) FROM sessions WHERE serial = 'PEN-K' LIMIT 1")
KB=$(sqlite3 "$T/b.db" "SELECT serial || '/' || lower(substr(hex(uuid),1,8) || '-' ||
    substr(hex(uuid),9,4) || '-' || substr(hex(uuid),13,4) || '-' ||
    substr(hex(uuid),17,4) || '-' || substr(hex(uuid),21)) FROM sessions WHERE serial = 'PEN-KB' LIMIT 1")
expect 0 --socket "$T/b.sock" sessions annotate "$KK" --client C-K --note "on the impostor's record"
expect 0 --socket "$T/b.sock" sessions annotate "$KB" --client C-B
site_synced b
assert_eq "$(psql_su -c "SELECT string_agg(serial || '/' || uuid || ':' || client_ref, ',') FROM penlink.annotations WHERE site = 'site-b'")" "$KB:C-B" "central: the annotation of site b's own session only"
grep -q "annotation 1 of session $KK stays local" "$T/b.log" || fail "the annotation kept local was not logged"
ok "the annotation of a session in conflict stays local, logged"

# A restart does not send them again.
stop_site "$B"
start_site b --port "$PB"
B=$SITE_PID
site_idle b 1
site_synced b
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.conflicts")" "3" "after a restart: no conflict sent again"
stop_site "$B"
stop_site "$A"
done_testing
