#!/usr/bin/env bash
# A clinic network in one folder: two sites (two penlinkd, each with a
# virtual pen and its own SQLite archive) feed one central PostgreSQL 15
# started here (initdb and pg_ctl, Unix socket only, as the user `postgres`
# when run as root).  Shows penlinkd's view of the replication, the rows
# central holds and what clinic staff read with penctl --central; then
# stops everything and removes the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${PENLINK_DEMO_NO_DEPS:-}" ] || bash scripts/deps.sh
bin=${PENLINK_BUILD:-build}; [ -n "${PENLINK_BUILD:-}" ] || bash scripts/build.sh build

pgbin=${PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$pgbin/initdb" ] || { echo "demo-central: no PostgreSQL 15 in $pgbin (scripts/deps.sh installs postgresql-15)" >&2; exit 1; }

work=$(mktemp -d -t penlink-demo-central.XXXXXX)
chmod 755 "$work"
pg="$work/pg"
sock="$pg/sock"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -f "$pg/data/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$pg/data" -m fast -w stop >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

echo "== central: PostgreSQL 15 in $pg (socket only)"
mkdir -p "$pg" "$sock"
[ "$(id -u)" -eq 0 ] && chown postgres: "$pg" "$sock"
as_pg "$pgbin/initdb" -D "$pg/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$work/initdb.log"
as_pg sh -c "cat >>'$pg/data/postgresql.conf'" <<EOF
listen_addresses = ''
unix_socket_directories = '$sock'
unix_socket_permissions = 0777
EOF
as_pg "$pgbin/pg_ctl" -D "$pg/data" -l "$pg/server.log" -w start >/dev/null
psql_su() { psql -X -q -h "$sock" -U postgres "$@"; }
psql_su -d postgres -c "CREATE DATABASE clinic"
penctl() { "$bin/cli/penctl" "$@"; }
penctl central init "host=$sock dbname=clinic user=postgres"
# One login role per site (inserts only), one for staff (reads only).
psql_su -d clinic -c "CREATE ROLE site_north LOGIN IN ROLE penlink_ingest;
                      CREATE ROLE site_south LOGIN IN ROLE penlink_ingest;
                      CREATE ROLE staff LOGIN IN ROLE penlink_read;"

# site NAME SERIAL SEED: a pen and a penlinkd replicating as site NAME.
site() {
  local name=$1 serial=$2 seed=$3
  "$bin/firmware-bridge/penemu" --pty --flash "$work/$name.flash" --serial "$serial" \
    --sessions 3 --session-bytes 300000 --seed "$seed" >"$work/$name.emu" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/$name.emu" ] && break; sleep 0.1; done
  cat >"$work/$name.conf" <<EOF
[central]
url = host=$sock dbname=clinic user=site_$name
site = $name
EOF
  "$bin/daemon/penlinkd" --foreground --no-usb --socket "$work/$name.sock" \
    --db "$work/$name.db" --config "$work/$name.conf" --port "$(head -n1 "$work/$name.emu")" \
    2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$work/$name.sock" ] && break; sleep 0.1; done
}
echo; echo "== two sites, each a penlinkd with a pen and its own archive"
site north PEN-NORTH-1 11
site south PEN-SOUTH-1 12
for name in north south; do
  for _ in $(seq 600); do
    pending=$(penctl --socket "$work/$name.sock" --json central status 2>/dev/null | jq -r '.pending + .audit_pending')
    idle=$(penctl --socket "$work/$name.sock" --json list 2>/dev/null | jq -r '.pens[0].state // empty')
    [ "$idle" = idle ] && [ "$pending" = 0 ] && break
    sleep 0.1
  done
  echo "-- site $name:"
  penctl --socket "$work/$name.sock" list
  penctl --socket "$work/$name.sock" central status
done

echo; echo "== the rows central holds (psql)"
psql_su -d clinic -c "SELECT site, serial, uuid, seq, size, left(sha256, 16) AS sha256,
  start_utc, n_events AS events FROM penlink.sessions ORDER BY site, start_ms"

echo; echo "== clinic staff: penctl --central, as the read-only role"
central="host=$sock dbname=clinic user=staff"
penctl --central "$central" sessions list
penctl --central "$central" --site south sessions export --format csv | cut -d, -f1-7
first=$(penctl --central "$central" --json sessions list | jq -r '.sessions[0] | "\(.serial)/\(.uuid)"')
echo; penctl --central "$central" sessions show "$first" | head -n 12

echo; echo "== every central record byte for byte the sites' own"
for name in north south; do
  sqlite3 "$work/$name.db" "SELECT lower(hex(sha256)) FROM sessions" | sort >"$work/$name.sha"
done
psql_su -d clinic -At -c "SELECT encode(sha256(record), 'hex') FROM penlink.sessions" | sort >"$work/central.sha"
if sort -u "$work/north.sha" "$work/south.sha" | cmp -s - "$work/central.sha"; then
  echo "ok: $(wc -l <"$work/central.sha") sessions, each once, digests equal"
else
  echo "MISMATCH between the sites' archives and central" >&2; exit 1
fi
echo; echo "demo-central: done (stopping the sites and PostgreSQL, removing $work)"
