#!/usr/bin/env bash
# Central ingest (issue 12): N sites (penlinkd, each with its own pen and
# SQLite archive) x M sessions into one central PostgreSQL 15 started in a
# temporary folder (tests/central/lib.sh).
#
#   1. Backlog: the sites archive their M sessions each while central is
#      down; their archives are kept as they are then.
#   2. Rounds, each in a fresh central database (central init): the sites
#      start again from the kept archives (no pens) and drain their
#      outboxes; ingest time runs from the sites' start to the last commit
#      in central (track_commit_timestamp).  Then, in the same round,
#      PostgreSQL's own COPY FROM STDIN (binary) of exactly the rows the
#      replicator wrote (sessions and events) into tables LIKE central's
#      (same columns, CHECK constraints, indexes).  The round's figure is
#      COPY's time over the ingest's: both saw the same machine.
#   3. Lag: one more pen per site with L sessions while central is up; for
#      each session, its central commit time minus its local commit time
#      (the archive's archived_ms), p50 and p99.
# The figure line is last: the median of the rounds' ingest/COPY throughput
# ratios with their spread (target >= 0.5) and the lag.
#
#   bench_central.sh [BUILD_DIR] [SITES] [SESSIONS] [SESSION_BYTES] [LIVE] [ROUNDS]
set -uo pipefail
build=$(cd "${1:-build}" && pwd)
n=${2:-2}; m=${3:-200}; size=${4:-20000}; live=${5:-50}; rounds=${6:-5}
export PENCTL="$build/cli/penctl" PENEMU="$build/firmware-bridge/penemu" PENLINKD="$build/daemon/penlinkd"
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  echo "central: not run (no PostgreSQL 15; scripts/deps.sh installs postgresql-15)"
  exit 0
fi
. "$(dirname "$0")/../central/lib.sh"
ms() { date +%s%3N; }

pg_init
as_pg sh -c "echo 'track_commit_timestamp = on' >>'$PGDATA/postgresql.conf'"
pg_stop fast
pg_start
expect 0 central init "host=$PGSOCK dbname=$PGDB user=postgres"
for i in $(seq "$n"); do psql_su -c "CREATE ROLE site_$i LOGIN IN ROLE penlink_ingest" || fail "role"; done
RETRY_MAX_S=1

# ---- 1. the backlog, archived while central is down
pg_stop fast
for i in $(seq "$n"); do
  start_emu p$i --serial "PEN-BENCH-$i" --flash "$T/p$i.flash" --sessions "$m" \
    --session-bytes "$size" --seed "$((70 + i))"
  start_site "$i" --port "$EMU_PORT"
  eval "SITE_$i=\$SITE_PID"
done
for i in $(seq "$n"); do
  for _ in $(seq 1200); do
    [ "$(sqlite3 "$T/$i.db" "SELECT count(*) FROM sessions" 2>/dev/null)" == "$m" ] && break
    sleep 0.1
  done
  [ "$(sqlite3 "$T/$i.db" "SELECT count(*) FROM sessions")" == "$m" ] || fail "site $i archived fewer than $m sessions"
done
for i in $(seq "$n"); do eval "stop_site \$SITE_$i"; done
echo "backlog: $n sites x $m sessions of ~$size bytes archived locally, central down"

for i in $(seq "$n"); do cp "$T/$i.db" "$T/$i.db.kept"; done
want=$((n * m))

# ---- 2. rounds: the sites' ingest, then COPY of the same rows
pg_start
ratios=()
for r in $(seq "$rounds"); do
  PGDB=central_r$r
  psql_su -d postgres -c "CREATE DATABASE $PGDB" || fail "cannot create database $PGDB"
  expect 0 central init "host=$PGSOCK dbname=$PGDB user=postgres"
  for i in $(seq "$n"); do
    rm -f "$T/$i.db" "$T/$i.db-wal" "$T/$i.db-shm"
    cp "$T/$i.db.kept" "$T/$i.db"
  done
  t0=$(ms)
  for i in $(seq "$n"); do start_site "$i"; eval "SITE_$i=\$SITE_PID"; done
  for _ in $(seq 3000); do
    [ "$(psql_su -c "SELECT count(*) FROM penlink.sessions")" -ge "$want" ] && break
    sleep 0.02
  done
  got=$(psql_su -c "SELECT count(*) FROM penlink.sessions")
  [ "$got" -eq "$want" ] || fail "round $r: central holds $got sessions, expected $want"
  t_end=$(psql_su -c "SELECT (extract(epoch FROM max(pg_xact_commit_timestamp(xmin))) * 1000)::bigint FROM penlink.sessions")
  ingest_ms=$((t_end - t0))
  bytes=$(psql_su -c "SELECT sum(size) FROM penlink.sessions")
  events=$(psql_su -c "SELECT count(*) FROM penlink.events")
  if [ "$r" -lt "$rounds" ]; then
    for i in $(seq "$n"); do eval "stop_site \$SITE_$i"; done
  fi

  psql_su -c "COPY (SELECT * FROM penlink.sessions ORDER BY id) TO STDOUT (FORMAT binary)" >"$T/sessions.copy"
  psql_su -c "COPY (SELECT * FROM penlink.events) TO STDOUT (FORMAT binary)" >"$T/events.copy"
  psql_su -c "CREATE SCHEMA bench;
    CREATE TABLE bench.sessions (LIKE penlink.sessions INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);
    CREATE TABLE bench.events (LIKE penlink.events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES);" || fail "bench tables"
  c0=$(ms)
  psql_su -c "COPY bench.sessions FROM STDIN (FORMAT binary)" <"$T/sessions.copy" || fail "COPY sessions"
  psql_su -c "COPY bench.events FROM STDIN (FORMAT binary)" <"$T/events.copy" || fail "COPY events"
  copy_ms=$(( $(ms) - c0 ))
  [ "$(psql_su -c "SELECT count(*) FROM bench.sessions")" -eq "$want" ] || fail "COPY lost rows"
  ratio=$(awk -v c="$copy_ms" -v i="$ingest_ms" 'BEGIN { printf "%.2f", c / (i > 0 ? i : 1) }')
  ratios+=("$ratio")
  echo "round $r: ingest of $want sessions ($bytes record bytes, $events event rows) $ingest_ms ms" \
       "= $(awk -v b="$bytes" -v t="$ingest_ms" 'BEGIN { printf "%.1f", b / (t > 0 ? t : 1) / 1000 }') MB/s;" \
       "COPY of the same rows $copy_ms ms" \
       "= $(awk -v b="$bytes" -v t="$copy_ms" 'BEGIN { printf "%.1f", b / (t > 0 ? t : 1) / 1000 }') MB/s; ratio $ratio"
done

# ---- 3. lag while central is up
for i in $(seq "$n"); do
  start_emu l$i --serial "PEN-LIVE-$i" --flash "$T/l$i.flash" --sessions "$live" \
    --session-bytes "$size" --seed "$((90 + i))"
  expect 0 --socket "$T/$i.sock" attach "$EMU_PORT"
done
wantl=$((n * live))
for _ in $(seq 1500); do
  [ "$(psql_su -c "SELECT count(*) FROM penlink.sessions WHERE serial LIKE 'PEN-LIVE-%'")" -ge "$wantl" ] && break
  sleep 0.1
done
read -r lagn p50 p99 lmax < <(psql_su -F ' ' -c "
  WITH l AS (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - archived_at) * 1000 AS ms
             FROM penlink.sessions WHERE serial LIKE 'PEN-LIVE-%')
  SELECT count(*), round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)), round(max(ms)) FROM l")
[ "$lagn" -eq "$wantl" ] || fail "central holds $lagn live sessions, expected $wantl"
echo "lag, local commit -> central commit, $lagn sessions archived live: p50 $p50 ms, p99 $p99 ms, max $lmax ms"
for i in $(seq "$n"); do eval "stop_site \$SITE_$i"; done

read -r median lo hi < <(printf '%s\n' "${ratios[@]}" | sort -g | awk '
  { v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                       printf "%.2f %.2f %.2f\n", m, v[1], v[NR] }')
verdict=$(awk -v r="$median" 'BEGIN { print (r >= 0.5 ? "PASS" : "FAIL") }')
echo "central: $n sites x $m sessions, ingest $median of COPY's throughput (median of $rounds rounds, spread $lo-$hi; target >= 0.5), lag p50 $p50 ms p99 $p99 ms: $verdict"
