# Shared by the central tests: the integration helpers (tests/integration/
# lib.sh: a temporary folder, penemu, penctl, assertions), plus a private
# PostgreSQL 15 (Debian's postgresql-15) and penlinkd "sites" replicating to
# it.  Source it.
#
# PostgreSQL runs from $T/pg: initdb and pg_ctl as the unprivileged user
# `postgres` when we are root (PostgreSQL refuses to run as root), as
# ourselves otherwise; no TCP (listen_addresses = ''), its Unix socket only
# in $T/pg/sock; trust authentication on that socket, which only this test
# can reach; stopped (immediately) when the test exits, whatever happens.
. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

: "${PENLINKD:?PENLINKD must point at the penlinkd binary}"
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
[ -x "$PG_BIN/initdb" ] || { echo "SKIP: no PostgreSQL 15 in $PG_BIN (scripts/deps.sh installs postgresql-15)"; exit 77; }

PGROOT="$T/pg"
PGDATA="$PGROOT/data"
PGSOCK="$PGROOT/sock"
PGDB=central
SITE_PIDS=()

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_stop() { # pg_stop [fast|immediate]
  [ -f "$PGDATA/postmaster.pid" ] || return 0
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -m "${1:-fast}" -w stop >>"$PGROOT/ctl.log" 2>&1
}

central_cleanup() {
  local p
  for p in "${SITE_PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${SITE_PIDS[@]}"; do wait "$p" 2>/dev/null; done
  pg_stop immediate
  cleanup
}
trap central_cleanup EXIT

pg_start() {
  as_pg "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PGROOT/server.log" -w -t 60 start \
    >>"$PGROOT/ctl.log" 2>&1 || { cat "$PGROOT/ctl.log" "$PGROOT/server.log" >&2; fail "PostgreSQL did not start"; }
}

# pg_init: a fresh cluster and an empty database $PGDB.
pg_init() {
  chmod 755 "$T"
  mkdir -p "$PGROOT" "$PGSOCK"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PGROOT" "$PGSOCK"
  as_pg "$PG_BIN/initdb" -D "$PGDATA" -U postgres -A trust --no-sync -E UTF8 \
    --locale=C.UTF-8 >"$PGROOT/initdb.log" 2>&1 || { cat "$PGROOT/initdb.log" >&2; fail "initdb failed"; }
  cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$PGSOCK'
unix_socket_permissions = 0777
fsync = off
full_page_writes = off
shared_buffers = 32MB
max_connections = 30
log_min_messages = warning
EOF
  pg_start
  psql_su -d postgres -c "CREATE DATABASE $PGDB" >/dev/null || fail "cannot create database $PGDB"
}

# psql_su ARGS...: psql as the superuser; psql_as ROLE ARGS...: as ROLE.
psql_su() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$PGSOCK" -U postgres -d "$PGDB" "$@"; }
psql_as() { local r=$1; shift; psql -X -q -At -v ON_ERROR_STOP=1 -h "$PGSOCK" -U "$r" -d "$PGDB" "$@"; }

# central_init: the schema through penctl, and a login role per site and a
# reader.
central_init() {
  expect 0 central init "host=$PGSOCK dbname=$PGDB user=postgres"
  psql_su -c "CREATE ROLE site_a LOGIN IN ROLE penlink_ingest;
              CREATE ROLE site_b LOGIN IN ROLE penlink_ingest;
              CREATE ROLE reader LOGIN IN ROLE penlink_read;" || fail "cannot create roles"
}

# start_site NAME [penlinkd args...]: penlinkd with its own socket, archive
# and [central] (site NAME, role site_NAME); sets SITE_PID; the socket is
# $T/NAME.sock, the log $T/NAME.log.
start_site() {
  local name=$1; shift
  cat >"$T/$name.conf" <<EOF
[central]
url = host=$PGSOCK dbname=$PGDB user=site_$name
site = site-$name
retry_max_s = ${RETRY_MAX_S:-2}
EOF
  "${WRAP[@]}" "$PENLINKD" --foreground --no-usb --socket "$T/$name.sock" \
    --db "$T/$name.db" --config "$T/$name.conf" --log-level debug "$@" >>"$T/$name.log" 2>&1 &
  SITE_PID=$!
  SITE_PIDS+=("$SITE_PID")
  wait_up "$SITE_PID" 400 test -S "$T/$name.sock" && return 0
  cat "$T/$name.log" >&2
  fail "penlinkd of site $name did not start"
}

stop_site() { # stop_site PID: SIGTERM, must exit 0
  kill "$1"; wait "$1"; local rc=$?
  [ "$rc" -eq 0 ] || fail "penlinkd $1 exited $rc on SIGTERM"
}

# site_idle NAME PENS: the site's pens all attached and idle.
site_idle() {
  local name=$1 want=$2 i n idle
  for i in $(seq 600); do
    run --socket "$T/$name.sock" --json list
    if [ "$RC" -eq 0 ]; then
      n=$(jq '.pens | length' <<<"$OUT")
      idle=$(jq '[.pens[] | select(.state == "idle")] | length' <<<"$OUT")
      [ "$n" -eq "$want" ] && [ "$idle" -eq "$want" ] && return 0
    fi
    sleep 0.1
  done
  cat "$T/$name.log" >&2
  fail "site $name: pens not idle within 60 s (last: $OUT)"
}

# central_status NAME: penctl central status --json of the site into OUT.
central_status() { expect 0 --socket "$T/$1.sock" --json central status; }

# site_synced NAME [seconds]: the site's outbox is empty (no session, audit
# entry, annotation or pen pending) and its archive holds every session.
site_synced() {
  local name=$1 limit=${2:-60} i
  for i in $(seq $((limit * 5))); do
    central_status "$name"
    [ "$(jqo '.pending + .audit_pending + .annotations_pending + .pens_pending')" -eq 0 ] && return 0
    sleep 0.2
  done
  tail -n 30 "$T/$name.log" >&2
  fail "site $name: outbox not empty within ${limit}s ($OUT)"
}

# session_key NAME [N]: "SERIAL/UUID" of the site's Nth session (by id,
# from 0).
session_key() {
  sqlite3 "$T/$1.db" "SELECT serial || '/' || lower(substr(hex(uuid),1,8) || '-' ||
    substr(hex(uuid),9,4) || '-' || substr(hex(uuid),13,4) || '-' ||
    substr(hex(uuid),17,4) || '-' || substr(hex(uuid),21)) FROM sessions
    ORDER BY id LIMIT 1 OFFSET ${2:-0}"
}

# local_digests NAME: "serial uuid sha256" of every session in the site's
# archive, sorted.
local_digests() {
  sqlite3 "$T/$1.db" "SELECT serial || ' ' || lower(substr(hex(uuid),1,8) || '-' ||
    substr(hex(uuid),9,4) || '-' || substr(hex(uuid),13,4) || '-' ||
    substr(hex(uuid),17,4) || '-' || substr(hex(uuid),21)) || ' ' ||
    lower(hex(sha256)) FROM sessions" | sort
}

# central_digests: the same from central.
central_digests() {
  psql_su -c "SELECT serial || ' ' || uuid || ' ' || sha256 FROM penlink.sessions" | sort
}

# records_equal NAME: every record of the site's archive is byte for byte the
# one central holds under its key (hex dumps compared through their SHA-256;
# central's own CHECK already ties each record to its digest).
records_equal() {
  local name=$1 line serial uuid want got
  while read -r serial uuid _; do
    want=$(sqlite3 "$T/$name.db" "SELECT lower(hex(record)) FROM sessions WHERE serial = '$serial'
      AND lower(hex(uuid)) = '${uuid//-/}'" | sha256sum | cut -d' ' -f1)
    got=$(psql_su -c "SELECT encode(record, 'hex') FROM penlink.sessions WHERE serial = '$serial'
      AND uuid = '$uuid'" | sha256sum | cut -d' ' -f1)
    [ "$want" == "$got" ] || fail "record $serial/$uuid differs between site $name and central"
  done < <(local_digests "$name")
  ok "site $name: every record byte for byte in central"
}
