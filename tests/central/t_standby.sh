#!/usr/bin/env bash
# A read replica: a streaming standby of the test server (pg_basebackup -R,
# started as a hot standby on a socket of its own) serves penctl --central
# exactly what the primary does, once it has replayed the primary's WAL:
# the same sessions listed, shown and exported.
. "$(dirname "$0")/lib.sh"

pg_init
central_init
start_emu a1 --serial PEN-SB-1 --flash "$T/a1.flash" --sessions 3 --session-bytes 90000 --seed 61
PA1=$EMU_PORT
start_emu a2 --serial PEN-SB-2 --flash "$T/a2.flash" --sessions 2 --session-bytes 70000 --seed 62
PA2=$EMU_PORT

# The standby, taken before any session exists: everything it shows later
# came by streaming replication.
SBDATA="$PGROOT/standby"
SBSOCK="$PGROOT/sock-standby"
mkdir -p "$SBSOCK"
[ "$(id -u)" -eq 0 ] && chown postgres: "$SBSOCK"
as_pg "$PG_BIN/pg_basebackup" -D "$SBDATA" -R -X stream -c fast -h "$PGSOCK" -U postgres \
  >"$PGROOT/basebackup.log" 2>&1 || { cat "$PGROOT/basebackup.log" >&2; fail "pg_basebackup failed"; }
[ -f "$SBDATA/standby.signal" ] || fail "pg_basebackup -R wrote no standby.signal"
grep -q primary_conninfo "$SBDATA/postgresql.auto.conf" || fail "pg_basebackup -R wrote no primary_conninfo"
as_pg sh -c "echo \"unix_socket_directories = '$SBSOCK'\" >>'$SBDATA/postgresql.conf'; echo 'hot_standby = on' >>'$SBDATA/postgresql.conf'"
sb_stop() { [ -f "$SBDATA/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$SBDATA" -m immediate -w stop >>"$PGROOT/ctl.log" 2>&1; }
trap 'sb_stop; central_cleanup' EXIT
as_pg "$PG_BIN/pg_ctl" -D "$SBDATA" -l "$PGROOT/standby.log" -w -t 60 start >>"$PGROOT/ctl.log" 2>&1 \
  || { cat "$PGROOT/standby.log" >&2; fail "the standby did not start"; }
psql_sb() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$SBSOCK" -U postgres -d "$PGDB" "$@"; }
assert_eq "$(psql_sb -c "SELECT pg_is_in_recovery()")" "t" "the standby is in recovery (read-only)"
assert_eq "$(psql_su -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")" "1" "the primary streams to it"

start_site a --port "$PA1" --port "$PA2"
A=$SITE_PID
site_idle a 2
site_synced a
ok "site a replicated 5 sessions to the primary"

# Caught up: the standby has replayed at least the primary's current WAL.
lsn=$(psql_su -c "SELECT pg_current_wal_lsn()")
for i in $(seq 300); do
  [ "$(psql_sb -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" == "t" ] && break
  sleep 0.1
done
[ "$(psql_sb -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" == "t" ] || fail "the standby did not replay up to $lsn within 30 s"
ok "the standby replayed the primary's WAL up to $lsn"

P=(--central "host=$PGSOCK dbname=$PGDB user=reader")
S=(--central "host=$SBSOCK dbname=$PGDB user=reader")
expect 0 "${P[@]}" --json sessions list
primary_list=$OUT
assert_eq "$(jqo '.sessions | length')" "5" "the primary lists 5 sessions"
expect 0 "${S[@]}" --json sessions list
assert_eq "$OUT" "$primary_list" "the standby lists the same sessions, field for field"
for key in $(jq -r '.sessions[] | "\(.serial)/\(.uuid)"' <<<"$primary_list"); do
  expect 0 "${P[@]}" --json sessions show "$key"
  want=$OUT
  expect 0 "${S[@]}" --json sessions show "$key"
  [ "$OUT" == "$want" ] || fail "show $key differs between the standby and the primary"
done
ok "the standby shows every session as the primary does"
for fmt in csv json; do
  expect 0 "${P[@]}" sessions export --format "$fmt" --out "$T/primary.$fmt"
  expect 0 "${S[@]}" sessions export --format "$fmt" --out "$T/standby.$fmt"
  cmp -s "$T/primary.$fmt" "$T/standby.$fmt" || fail "export $fmt differs between the standby and the primary"
done
ok "exports from the standby are the primary's byte for byte"
expect 0 "${S[@]}" -s PEN-SB-2 sessions pull --out "$T/pulled"
assert_eq "$(ls "$T/pulled" | wc -l)" "2" "pull from the standby"
# The standby is read-only for everyone, penlinkd's role too.
run_out=$(psql -X -q -At -h "$SBSOCK" -U site_a -d "$PGDB" -c "INSERT INTO penlink.conflicts (site, serial, uuid, central_sha256, offered_sha256) VALUES ('x','x','00000000-0000-0000-0000-000000000000','a','b')" 2>&1)
assert_contains "$run_out" "read-only transaction" "the standby refuses writes"

stop_site "$A"
done_testing
