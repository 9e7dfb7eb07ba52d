#!/usr/bin/env bash
# Clinic staff read central: `penctl --central URL` as a role granted
# penlink_read lists (filters: --site, -s, --since, --until, --client),
# shows (with the annotations written at the site), pulls and exports (CSV
# and JSON, byte for byte what the site's penlinkd exports of the same
# sessions: annotations, the pen's model and hardware included; only the
# delivering site added) and reads and verifies the audit trail, with
# --json; the commands central cannot answer, a role without penlink_read
# and a URL with a password are refused with messages that say why (and
# never show the password).
. "$(dirname "$0")/lib.sh"

pg_init
central_init
start_emu a1 --serial PEN-RA-1 --model "PL-Pen Pro" --flash "$T/a1.flash" --sessions 4 --session-bytes 120000 --seed 41
PA1=$EMU_PORT
start_emu a2 --serial PEN-RA-2 --flash "$T/a2.flash" --sessions 3 --session-bytes 90000 --seed 42
PA2=$EMU_PORT
start_emu b1 --serial PEN-RB-1 --flash "$T/b1.flash" --sessions 2 --session-bytes 80000 --seed 43
PB1=$EMU_PORT
start_site a --port "$PA1" --port "$PA2"
A=$SITE_PID
start_site b --port "$PB1"
B=$SITE_PID
site_idle a 2
site_idle b 1
# An audited action at site a, so its trail has an entry of its own.
expect 0 --socket "$T/a.sock" -s PEN-RA-1 preset push --id 2 --name "Audited" --depth 0.75 --speed 2
site_synced a
site_synced b
ok "two sites archived and replicated 9 sessions"
# Annotations at site a: two sessions, a correction of the client
# reference on the second (C-9 -> C-1), notes on both.
K0=$(session_key a 0)
K1=$(session_key a 4)
expect 0 --socket "$T/a.sock" sessions annotate "$K0" --client C-1 --operator ana --note "forehead, 2 passes"
expect 0 --socket "$T/a.sock" sessions annotate "$K0" --note "client asked for a pause, \"ok\" | later"
expect 0 --socket "$T/a.sock" sessions annotate "$K1" --client C-9 --operator bo
expect 0 --socket "$T/a.sock" sessions annotate "$K1" --client C-1 --note "wrong client reference, corrected"
site_synced a
assert_eq "$(psql_su -c "SELECT count(*) FROM penlink.annotations WHERE site = 'site-a'")" "4" "central holds site a's 4 annotations"
assert_eq "$(psql_su -c "SELECT string_agg(local_id || ':' || serial || '/' || uuid || ':' || client_ref || ':' || operator || ':' || note, ',' ORDER BY local_id) FROM penlink.annotations")" \
  "$(sqlite3 "$T/a.db" "SELECT group_concat(x, ',') FROM (SELECT a.id || ':' || s.serial || '/' || lower(substr(hex(s.uuid),1,8) || '-' || substr(hex(s.uuid),9,4) || '-' || substr(hex(s.uuid),13,4) || '-' || substr(hex(s.uuid),17,4) || '-' || substr(hex(s.uuid),21)) || ':' || a.client_ref || ':' || a.operator || ':' || a.note AS x FROM annotations a JOIN sessions s ON s.id = a.session_id ORDER BY a.id)")" \
  "central's annotations are the site's, row for row"
assert_eq "$(psql_su -c "SELECT model FROM penlink.pens_latest WHERE site = 'site-a' AND serial = 'PEN-RA-1'")" "PL-Pen Pro" "central knows the pen's model"
assert_eq "$(psql_su -c "SELECT string_agg(serial || ':' || model || ':' || hw_revision || ':' || fw_version, ',' ORDER BY serial) FROM penlink.pens_latest WHERE site = 'site-a'")" \
  "$(sqlite3 "$T/a.db" "SELECT group_concat(serial || ':' || model || ':' || hw_revision || ':' || fw_version, ',') FROM (SELECT * FROM pens ORDER BY serial)")" \
  "central's latest pens of site a are the site's pens table"

URL="host=$PGSOCK dbname=$PGDB user=reader"
C=(--central "$URL")

# ---- list
expect 0 "${C[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "9" "list: every session of both sites"
got=$(jqo '.sessions[] | "\(.serial) \(.uuid) \(.sha256)"' | sort)
assert_eq "$got" "$(central_digests)" "list: keys and digests are central's rows"
assert_eq "$(jqo '[.sessions[] | select(.archived_utc == null)] | length')" "0" "list: every session has its archive time"
expect 0 "${C[@]}" --json --site site-a sessions list
assert_eq "$(jqo '.sessions | length')" "7" "--site site-a: its 7 sessions"
assert_eq "$(jqo '[.sessions[].serial] | unique | join(",")')" "PEN-RA-1,PEN-RA-2" "--site site-a: only its pens"
expect 0 "${C[@]}" --json -s PEN-RB-1 sessions list
assert_eq "$(jqo '.sessions | length')" "2" "-s PEN-RB-1: its 2 sessions"
# Times: the third session's start splits the list.
expect 0 "${C[@]}" --json sessions list
mid=$(jqo '[.sessions[] | .start_utc] | sort | .[3] | sub("\\.[0-9]+Z$"; "Z")')
expect 0 "${C[@]}" --json sessions list --since "$mid"
since_n=$(jqo '.sessions | length')
expect 0 "${C[@]}" --json sessions list --until "$mid"
until_n=$(jqo '.sessions | length')
assert_eq "$((since_n + until_n))" "9" "--since and --until split the list ($since_n + $until_n)"
[ "$until_n" -eq 3 ] || fail "--until $mid: $until_n sessions, expected 3"
expect 0 "${C[@]}" sessions list
assert_contains "$OUT" "9 sessions in the archive" "list for people"

# ---- show: what the site shows
key=$K0
expect 0 --socket "$T/a.sock" --json sessions show "$key"
site_show=$(jq -S . <<<"$OUT")
expect 0 "${C[@]}" --json sessions show "$key"
assert_eq "$(jq -S . <<<"$OUT")" "$site_show" "show SERIAL/UUID: what the site shows, annotations included"
expect 0 "${C[@]}" -s "${key%%/*}" --json sessions show "${key#*/}"
assert_eq "$(jq -S . <<<"$OUT")" "$site_show" "show -s SERIAL UUID"
assert_eq "$(jqo '.annotations | length')" "2" "show: the session's 2 annotations"
expect 0 "${C[@]}" sessions show "$K1"
assert_contains "$OUT" "wrong client reference, corrected" "show for people: the annotations"

# ---- the treatment report from central: the site's annotations in it
expect 0 "${C[@]}" sessions report "$K0" --out "$T/k0.html"
assert_contains "$(cat "$T/k0.html")" "forehead, 2 passes" "report: the session's annotations, from central"
assert_contains "$(cat "$T/k0.html")" "central archive" "report: says where the record came from"

# ---- list --client: the current client reference, as the site has it
expect 0 --socket "$T/a.sock" --json sessions list --client C-1
site_c1=$(jq -c '[.sessions[] | "\(.serial)/\(.uuid)"] | sort' <<<"$OUT")
assert_eq "$(jq length <<<"$site_c1")" "2" "site a: 2 sessions of client C-1"
expect 0 "${C[@]}" --json sessions list --client C-1
assert_eq "$(jq -c '[.sessions[] | "\(.serial)/\(.uuid)"] | sort' <<<"$OUT")" "$site_c1" "central: list --client C-1 gives the site's sessions"
assert_eq "$(jqo .client_ref)" "C-1" "list --client --json names the client"
expect 0 "${C[@]}" --json sessions list --client C-9
assert_eq "$(jqo '.sessions | length')" "0" "list --client C-9: the corrected reference no longer finds it"
expect 0 "${C[@]}" --json --site site-b sessions list --client C-1
assert_eq "$(jqo '.sessions | length')" "0" "list --client with --site site-b: none"
expect 0 "${C[@]}" sessions list --client C-1
assert_contains "$OUT" "2 sessions in the archive for client C-1" "list --client for people"
expect 3 "${C[@]}" sessions show "PEN-NONE/${key#*/}"
assert_contains "$ERR" "no session PEN-NONE/" "show: an unknown session is not found (exit 3)"

# ---- pull: every record, verified
expect 0 "${C[@]}" --json --site site-b sessions pull --out "$T/pulled"
assert_eq "$(jqo '.pulled | length')" "2" "pull --site site-b: 2 records"
for f in "$T"/pulled/*.plrec; do
  want=$(psql_su -c "SELECT sha256 FROM penlink.sessions WHERE sha256 = '$(sha256sum "$f" | cut -d' ' -f1)'")
  [ -n "$want" ] || fail "pulled $f does not match any central digest"
done
ok "pulled records match central's digests"

# ---- export: the site's own export, whole, but for the delivering site
# (which only central names).
# norm FILE FMT: FILE without the site column/key, every other byte kept.
norm() {
  if [ "$2" = csv ]; then
    python3 -c 'import csv, sys
r = list(csv.reader(open(sys.argv[1], newline="")))
drop = [i for i, h in enumerate(r[0]) if h in ("site",)]
w = csv.writer(sys.stdout, lineterminator="\r\n")
for row in r:
    w.writerow([v for i, v in enumerate(row) if i not in drop])' "$1"
  else
    jq -c 'if type == "array" then map(del(.site)) else del(.site) end' "$1"
  fi
}
for fmt in csv json; do
  expect 0 --socket "$T/a.sock" sessions export --format "$fmt" --out "$T/site.$fmt"
  expect 0 "${C[@]}" --site site-a sessions export --format "$fmt" --out "$T/central.$fmt"
  [ "$(norm "$T/site.$fmt" "$fmt")" == "$(norm "$T/central.$fmt" "$fmt")" ] ||
    { diff <(norm "$T/site.$fmt" "$fmt" | head -c 3000) <(norm "$T/central.$fmt" "$fmt" | head -c 3000) >&2; fail "export $fmt: central differs from site a's"; }
  ok "export --format $fmt: site a's own export (site aside)"
done
assert_contains "$(cat "$T/central.csv")" "forehead, 2 passes | client asked for a pause" "CSV: the notes, oldest first"
assert_eq "$(jq -r --arg k "${K1#*/}" '.[] | select(.uuid == $k) | .annotations | length' "$T/central.json")" "2" "JSON: every annotation of a session"
assert_eq "$(jq -r '[.[] | select(.serial == "PEN-RA-1") | .model] | unique | join(",")' "$T/central.json")" "PL-Pen Pro" "JSON: the pen's model from central"
assert_eq "$(jq -r '[.[].site] | unique | join(",")' "$T/central.json")" "site-a" "central's JSON names the delivering site"
expect 0 "${C[@]}" sessions export --format json
assert_eq "$(jq length <<<"$OUT")" "9" "export to stdout: every session"
expect 0 "${C[@]}" -s PEN-RA-2 sessions export --format csv --dir "$T/per"
assert_eq "$(ls "$T/per" | wc -l)" "3" "export --dir: one file per session"
expect 0 --socket "$T/a.sock" -s PEN-RA-2 sessions export --format csv --dir "$T/per-site"
assert_eq "$(ls "$T/per")" "$(ls "$T/per-site")" "export --dir: the site's file names"
for f in "$T"/per/*.csv; do
  [ "$(norm "$f" csv)" == "$(norm "$T/per-site/${f##*/}" csv)" ] || fail "export --dir: $f differs from the site's"
done
ok "export --dir: the site's files"

# ---- audit: the site's trail (reads are audited there too) once replicated
# Past row 9 at least, so that central's rows are read in the order of
# their numbers, not of their text (row 10 after row 9, not after row 1).
while [ "$(sqlite3 "$T/a.db" "SELECT count(*) FROM audit")" -lt 12 ]; do
  expect 0 --socket "$T/a.sock" --json sessions show "$K0"
done
site_synced a
expect 0 --socket "$T/a.sock" --json audit --limit 1000
site_audit=$(jq -S '[.entries[] | del(.hash, .id)]' <<<"$OUT")
upto=$(jq '[.entries[].utc_ms] | max' <<<"$OUT")
expect 0 "${C[@]}" --site site-a --json audit --limit 1000
assert_eq "$(jq -S "[.entries[] | select(.utc_ms <= $upto) | del(.hash, .id)]" <<<"$OUT")" "$site_audit" "audit --site site-a: the site's own trail ($(jq length <<<"$site_audit") entries)"
assert_contains "$OUT" "presets.push" "audit: the preset push is there"
expect 0 "${C[@]}" --site site-b --json audit --limit 1000
assert_eq "$(jqo '[.entries[] | select(.pen | startswith("PEN-RA"))] | length')" "0" "audit --site site-b: none of site a's"
expect 0 "${C[@]}" audit --limit 1
ok "audit for people"

# ---- audit verify: central's copy against the site's own chain
expect 0 --socket "$T/a.sock" --json audit verify
site_head=$(jqo .head)
site_synced a
expect 0 "${C[@]}" --site site-a --json audit verify --head "$site_head"
assert_eq "$(jqo .intact)" "true" "central verify --site site-a: intact, the site's head is in it"
[ "$(jqo .rows)" -ge "$(sqlite3 "$T/a.db" "SELECT count(*) FROM audit WHERE id <= (SELECT id FROM audit WHERE hash = '$site_head')")" ] || fail "central verify checked fewer rows than the site's chain up to its head"
last=$(psql_su -c "SELECT max(local_id) FROM penlink.audit WHERE site = 'site-a'")
assert_eq "$(jqo .head)" "$(sqlite3 "$T/a.db" "SELECT hash FROM audit WHERE id = $last")" "central verify: the head is the site's hash of the last row central holds"
expect 0 "${C[@]}" audit verify
assert_contains "$OUT" "chain intact" "central verify over every site"
expect 8 "${C[@]}" --site site-a --json audit verify --head "$(printf '%064d' 7)"
assert_contains "$ERR" "not in the site's trail" "a head central lacks: exit 8"

# ---- refusals
expect 2 "${C[@]}" --socket "$T/a.sock" sessions list
assert_contains "$ERR" "--central" "--central with --socket: usage error"
expect 2 --site site-a --socket "$T/a.sock" sessions list
assert_contains "$ERR" "needs --central" "--site without --central: usage error"
run "${C[@]}" list
[ "$RC" -ne 0 ] || fail "list through --central succeeded"
assert_contains "$ERR" "drop --central" "a pen command says --central cannot answer it"
assert_contains "$ERR" "(sessions list, sessions pull, sessions show, sessions report, sessions export, report, audit, audit verify)" \
  "... and names what it answers, from penctl's command table"
expect 0 --help
assert_contains "$OUT" "Also with --central URL (the clinic's central archive, read-only):" "penctl --help: the --central commands listed"
psql_su -c "CREATE ROLE nobody LOGIN" || fail "cannot create role nobody"
expect 5 --central "host=$PGSOCK dbname=$PGDB user=nobody" sessions list
assert_contains "$ERR" "GRANT penlink_read" "a role without penlink_read: told what to grant (exit 5)"
run --central "host=$PGSOCK dbname=$PGDB user=reader password=s3cr3t-pw" sessions list
[ "$RC" -eq 2 ] || fail "a password in the URL: exit $RC, expected 2"
case "$OUT$ERR" in *s3cr3t-pw*) fail "the password was printed" ;; esac
assert_contains "$ERR" "passfile" "a password in the URL is refused, not printed"
run --central "host=$T/nowhere dbname=$PGDB user=reader" sessions list
assert_eq "$RC" "6" "no server: exit 6"
assert_contains "$ERR" "cannot connect to the central archive at host=$T/nowhere" "no server: says where"
expect 0 "${C[@]}" central init "host=$PGSOCK dbname=$PGDB user=postgres"
ok "central init is not a --central command (it names its own URL)"

# ---- penctl list names the replication in one line
expect 0 --socket "$T/a.sock" list
assert_contains "$OUT" "central: site site-a, connected, 0 pending" "list: central's state in one line"
expect 0 --socket "$T/a.sock" --json list
assert_eq "$(jqo .central.site)" "site-a" "list --json: the central object"
assert_eq "$(jqo .central.pending)" "0" "list --json: outbox depth"

# ---- central's copy altered (triggers off: only the owner can do that):
# verify names the row.  The site's hashes are not in central's chain, but
# recomputed from the row.
tamper() { # tamper SQL
  psql_su -c "ALTER TABLE penlink.audit DISABLE TRIGGER audit_append_only; $1;
    ALTER TABLE penlink.audit ENABLE TRIGGER audit_append_only;" || fail "cannot tamper: $1"
}
tamper "UPDATE penlink.audit SET local_hash = repeat('a', 64) WHERE site = 'site-a' AND local_id = 3"
expect 8 "${C[@]}" --site site-a audit verify
assert_contains "$ERR" "site site-a: the site's chain: row 3 was changed" "a changed site hash: verify names the row"
tamper "UPDATE penlink.audit SET result = 'forged' WHERE site = 'site-a' AND local_id = 2"
expect 8 "${C[@]}" --json audit verify
assert_eq "$(jqo .verify.bad_row)" "2" "a changed central row: verify names it"
expect 8 "${C[@]}" audit verify
assert_contains "$ERR" "site site-a: row 2 does not match central's chain" "and says which site and why"
# Nothing was done at site b but its penlinkd setting the pen's clock at
# attach, which its trail holds.
site_synced b
expect 0 "${C[@]}" --site site-b audit verify
assert_contains "$OUT" "$(sqlite3 "$T/b.db" "SELECT count(*) FROM audit WHERE action = 'clock.sync' AND user = 'penlinkd'") rows, chain intact" \
  "site b's trail (its clock sync at attach only) is intact"

# ---- audit: rows of one millisecond are listed newest (highest id) first
# by number: a site's trail as central holds it, written here.
psql_su -c "INSERT INTO penlink.audit (site, local_id, utc_ms, uid, \"user\", pen,
  action, old_value, new_value, result) SELECT 'site-z', g, 1700000000000, 0,
  'root', '', 'sessions.show', '{}', '{}', 'ok' FROM generate_series(1, 12) g" ||
  fail "cannot write site z's trail"
expect 0 "${C[@]}" --site site-z --json audit --limit 100
assert_eq "$(jqo '[.entries[].id] | map(tostring) | join(",")')" "12,11,10,9,8,7,6,5,4,3,2,1" \
  "audit: one millisecond's rows by id, 12 before 9"

stop_site "$A"
stop_site "$B"
done_testing
