#!/usr/bin/env bash
# Central goes away and comes back; nothing is lost or duplicated:
#  - PostgreSQL stopped (immediate) while batches are in flight, pens
#    archived locally meanwhile (a pen of 50 sessions while it is down),
#    then restarted: everything reaches central;
#  - connections killed with pg_terminate_backend again and again;
#  - penlinkd killed with SIGKILL while it replicates, then restarted.
# Each time central ends up equal to the site's archive: every session once,
# same digest, same bytes.
. "$(dirname "$0")/lib.sh"

pg_init
central_init
start_emu p1 --serial PEN-OUT-1 --flash "$T/p1.flash" --sessions 3 --session-bytes 100000 --seed 41
start_site a --port "$EMU_PORT"
A=$SITE_PID
site_idle a 1
site_synced a
ok "site a replicating"

same_as_site() { # what: central equals site a's archive
  assert_eq "$(central_digests)" "$(local_digests a)" "$1: central holds exactly site a's sessions, same digests"
  assert_eq "$(psql_su -c "SELECT count(*) FROM (SELECT serial, uuid FROM penlink.sessions GROUP BY 1, 2 HAVING count(*) > 1) d")" "0" "$1: nothing duplicated"
}

# ---- PostgreSQL stopped with batches in flight (8 MiB batches of 1 MB records).
start_emu p2 --serial PEN-OUT-2 --flash "$T/p2.flash" --sessions 24 --session-bytes 1000000 --seed 42
P2=$EMU_PORT
expect 0 --socket "$T/a.sock" attach "$P2"
for i in $(seq 600); do
  n=$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE serial = 'PEN-OUT-2'" 2>/dev/null || echo 0)
  [ "$n" -gt 0 ] && break
  sleep 0.05
done
pg_stop immediate
ok "PostgreSQL stopped (immediate) after $n of PEN-OUT-2's sessions reached it"

# While central is down: the pen's sessions and 50 more from another pen are
# archived locally.
start_emu p3 --serial PEN-OUT-3 --flash "$T/p3.flash" --sessions 50 --session-bytes 20000 --seed 43
expect 0 --socket "$T/a.sock" attach "$EMU_PORT"
site_idle a 3 120
assert_eq "$(sqlite3 "$T/a.db" "SELECT count(*) FROM sessions")" "77" "all 77 sessions archived locally while central is down"
central_status a
assert_eq "$(jqo .connected)" "false" "status: not connected"
[ "$(jqo .pending)" -gt 0 ] || fail "nothing pending while central is down: $OUT"
ok "status: $(jqo .pending) pending"
assert_contains "$(jqo .last_error)" "connect" "status: the last error says why"
[ "$(jqo .next_attempt_utc)" != "null" ] || fail "no next attempt while down: $OUT"
ok "status: next attempt at $(jqo .next_attempt_utc)"

pg_start
site_synced a 120
ok "after the restart the outbox drained"
same_as_site "PostgreSQL stopped and restarted"
grep -q "working again after" "$T/a.log" || fail "no 'working again' line in the log"
ok "the recovery was logged"

# ---- Connections killed again and again while a backlog replicates.
start_emu p4 --serial PEN-OUT-4 --flash "$T/p4.flash" --sessions 20 --session-bytes 600000 --seed 44
expect 0 --socket "$T/a.sock" attach "$EMU_PORT"
kills=0
for i in $(seq 40); do
  k=$(psql_su -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'penlinkd'")
  kills=$((kills + k))
  sleep 0.2
done
[ "$kills" -gt 3 ] || fail "only $kills connections were killed"
ok "$kills penlinkd connections terminated with pg_terminate_backend"
site_idle a 4 120
site_synced a 120
same_as_site "connections terminated"

# ---- penlinkd killed (SIGKILL) while it replicates, then restarted.
start_emu p5 --serial PEN-OUT-5 --flash "$T/p5.flash" --sessions 16 --session-bytes 800000 --seed 45
P5=$EMU_PORT
expect 0 --socket "$T/a.sock" attach "$P5"
for i in $(seq 600); do
  n=$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE serial = 'PEN-OUT-5'")
  [ "$n" -gt 0 ] && break
  sleep 0.02
done
kill -9 "$A"; wait "$A" 2>/dev/null
ok "penlinkd killed with SIGKILL after $n of PEN-OUT-5's sessions reached central"
start_site a --port "$P5"
A=$SITE_PID
site_idle a 1 120
site_synced a 120
same_as_site "penlinkd killed and restarted"
records_equal a
stop_site "$A"
done_testing
