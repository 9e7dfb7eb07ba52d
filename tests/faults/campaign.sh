#!/usr/bin/env bash
# The randomized fault campaign: penlinkd against several faulty virtual pens,
# killed and restarted at random points, must never lose, duplicate or alter a
# session, and never let a pen reclaim one it has not committed.  See README.md
# in this folder.
#
#   campaign.sh [--runs N] [--seed S] [--first R] [--pens K] [--build DIR]
#               [--small] [--keep] [--central] [-v]
#
# Run R's plan (pens, sizes, faults, the kill schedule) comes only from S and
# R, so `--seed S --first R --runs 1 --pens K` replays it; what a kill then
# interrupts depends on timing, so a replay repeats the plan, not every byte.
# --ctest: the bounded campaign ctest runs (12 runs of 3 pens, seed 1).
# --central: every run's penlinkd also replicates to a central PostgreSQL 15
# (started once, a database per run); at the end of each run central must
# equal the run's archive byte for byte (0 lost, duplicated, altered).
set -uo pipefail

CTEST_RUNS=12
RUNS=10 SEED=1 FIRST=1 PENS=3 SMALL=0 KEEP=0 VERBOSE=0 BUILD="" CENTRAL=0
ARGS=("$@")
usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    --first) FIRST=${2:?}; shift 2 ;;
    --pens) PENS=${2:?}; shift 2 ;;
    --build) BUILD=${2:?}; shift 2 ;;
    --small) SMALL=1; shift ;;
    --keep) KEEP=1; shift ;;
    --central) CENTRAL=1; shift ;;
    -v|--verbose) VERBOSE=1; shift ;;
    # The bounded campaign ctest runs (faults.campaign): CTEST_RUNS runs of
    # 3 pens, about 2-3 minutes on 2 cores; under PL_TEST_WRAPPER (valgrind)
    # one run of 2 small pens.  PL_CAMPAIGN_SEED picks another seed.
    --ctest)
      RUNS=$CTEST_RUNS PENS=3 SEED=${PL_CAMPAIGN_SEED:-1}
      [ -n "${PL_TEST_WRAPPER:-}" ] && { RUNS=1 PENS=2 SMALL=1; }
      CTEST=1
      shift ;;
    -h|--help) usage 0 ;;
    *) echo "campaign: unknown argument '$1'" >&2; usage ;;
  esac
done
# The bounded campaign with central (faults.campaign_central): 4 runs.
[ "${CTEST:-0}" = 1 ] && [ "$CENTRAL" = 1 ] && [ -z "${PL_TEST_WRAPPER:-}" ] && RUNS=4
for v in RUNS SEED FIRST PENS; do
  [[ ${!v} =~ ^[0-9]+$ ]] || { echo "campaign: --${v,,} needs a number, not '${!v}'" >&2; exit 2; }
done
[ "$PENS" -ge 1 ] && [ "$PENS" -le 16 ] || { echo "campaign: --pens must be 1..16" >&2; exit 2; }

# The pens' pseudo-terminals go on a private /dev/pts (a mount namespace
# with a new devpts instance) when we may: pty numbers are reused at once,
# and a daemon given a stale path would otherwise talk to some other test's
# pen (it happened: another suite's pen archived here and told to reclaim),
# and other tests' daemons to ours.
if [ -z "${PL_CAMPAIGN_NS:-}" ] && [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null &&
   unshare -m --propagation private sh -c 'mount -t devpts -o newinstance devpts /dev/pts' 2>/dev/null; then
  export PL_CAMPAIGN_NS=1
  exec unshare -m --propagation private bash -c \
    'mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts /dev/pts &&
     mount --bind /dev/pts/ptmx /dev/ptmx || exit 2; exec bash "$0" "$@"' "$0" "${ARGS[@]}"
fi
[ "${PL_CAMPAIGN_NS:-}" = 1 ] && NS_NOTE="pens on a private /dev/pts" ||
  NS_NOTE="WARNING: pens on the shared /dev/pts (not root, or no unshare): a reused pty number may reach another program's pen"

HERE=$(cd "$(dirname "$0")" && pwd)
if [ -n "$BUILD" ]; then
  PENLINKD=$BUILD/daemon/penlinkd PENEMU=$BUILD/firmware-bridge/penemu
  PENCTL=$BUILD/cli/penctl CAMPAIGN_CHECK=$BUILD/tests/faults/campaign_check
fi
for v in PENLINKD PENEMU PENCTL CAMPAIGN_CHECK; do
  [ -n "${!v:-}" ] && [ -x "${!v}" ] ||
    { echo "campaign: $v is not set to a program (use --build DIR)" >&2; exit 2; }
done
command -v jq >/dev/null || { echo "campaign: jq is needed (scripts/deps.sh)" >&2; exit 2; }
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
if [ "$CENTRAL" = 1 ]; then
  if [ ! -x "$PG_BIN/initdb" ] || ! command -v psql >/dev/null || ! command -v sqlite3 >/dev/null; then
    echo "SKIP: --central needs PostgreSQL 15 in $PG_BIN, psql and sqlite3 (scripts/deps.sh)"
    exit 77
  fi
fi
# Only the daemon is under test; the wrapper (valgrind) is applied to it alone.
read -r -a WRAP <<<"${PL_TEST_WRAPPER:-}"
# Everything waits longer under a wrapper (valgrind: 20-50x slower).
SLOW=1
[ ${#WRAP[@]} -gt 0 ] && SLOW=8

# Which fault flags this penemu knows (newer ones are added over time).
HELP=$("$PENEMU" --help)
has() { grep -q -- "$1" <<<"$HELP"; }
NEWFLAGS=()
for f in --fault-seed --fault-drop-bytes --fault-dup --fault-stall --fault-late \
         --fault-late-ms --fault-reboot-after --fault-reboot-every --hostile; do
  has "$f" && NEWFLAGS+=("$f")
done

# The log lines a sniping kill waits for (daemon/device*.c's wording).
SNIPE_AT=("SHA-256 verified" "resuming session" "downloading session" "attached on" "holds [0-9]* sessions" "clock set")
HOSTILE_MODES=()
has --hostile && HOSTILE_MODES=(oversize nodelim badproto wrongid flood slow)
# A pen listing a million sessions it cannot serve (the list and failed-session budgets).
grep -q "^ *sessions " <<<"$HELP" && HOSTILE_MODES+=(sessions)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# ------------------------------------------------------------------ randomness
# A 64-bit LCG in the shell's own arithmetic: deterministic, no subshells
# (bash reseeds $RANDOM in every subshell).
R=0
seed_rng() { R=$(( ($1 * 1000003 + $2 * 7919 + 12345) ^ 0x5DEECE66D )); rnd 0 1; rnd 0 1; }
# rnd LO HI: RV = uniform integer in LO..HI.
rnd() {
  R=$(( R * 6364136223846793005 + 1442695040888963407 ))
  RV=$(( ((R >> 33) & 0x7fffffff) % ($2 - $1 + 1) + $1 ))
}
# chance PCT: true PCT percent of the time.
chance() { rnd 0 99; [ "$RV" -lt "$1" ]; }

now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }

# ------------------------------------------------------------------ totals
T_RUNS=0 T_SESSIONS=0 T_LOST=0 T_DUP=0 T_ALTERED=0 T_RECLAIMED=0 T_CRASHES=0
T_PHANTOM=0 T_SNAPSHOTS=0 T_RESUMES=0 T_UNRECLAIMED=0 T_SNIPES=0 T_DRIVER_ERR=0 T_PENDING=0 T_KILLS=0 T_TERMS=0 T_PENKILLS=0 T_REPLUGS=0
T_C_SESSIONS=0 T_C_LOST=0 T_C_DUP=0 T_C_ALTERED=0
FAILED_RUNS=()
declare -A FIRED

# ------------------------------------------------------------------ central
# --central: one PostgreSQL for the campaign (socket only, as `postgres`
# when we are root), a database per run created by penctl central init,
# and a login role holding penlink_ingest that every run's penlinkd uses.
PGW="" PGSOCK=""
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
psql_c() { local db=$1; shift; PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -h "$PGSOCK" -U postgres -d "$db" "$@"; }
central_setup() {
  PGW=$(mktemp -d -t penlink-campaign-pg.XXXXXX)
  chmod 755 "$PGW"
  PGSOCK="$PGW/sock"
  mkdir -p "$PGSOCK"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$PGW" "$PGSOCK"
  as_pg "$PG_BIN/initdb" -D "$PGW/data" -U postgres -A trust --no-sync -E UTF8 \
    --locale=C.UTF-8 >"$PGW/initdb.log" 2>&1 || { cat "$PGW/initdb.log" >&2; exit 2; }
  as_pg sh -c "cat >>'$PGW/data/postgresql.conf'" <<PGCONF
listen_addresses = ''
unix_socket_directories = '$PGSOCK'
unix_socket_permissions = 0777
fsync = off
full_page_writes = off
shared_buffers = 32MB
PGCONF
  as_pg "$PG_BIN/pg_ctl" -D "$PGW/data" -l "$PGW/server.log" -w -t 60 start >/dev/null 2>&1 ||
    { cat "$PGW/server.log" >&2; echo "campaign: PostgreSQL did not start" >&2; exit 2; }
}
central_teardown() {
  [ -n "$PGW" ] || return 0
  [ -f "$PGW/data/postmaster.pid" ] && as_pg "$PG_BIN/pg_ctl" -D "$PGW/data" -m immediate -w stop >/dev/null 2>&1
  rm -rf "$PGW"
  PGW=""
}
# central_run_db RUN: a fresh database for the run, its schema, and the
# [central] section of the run's penlinkd.conf.
central_run_db() {
  local db="run_$1"
  psql_c postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null || return 1
  "$PENCTL" central init "host=$PGSOCK dbname=$db user=postgres" >/dev/null || return 1
  psql_c "$db" -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'campaign')
    THEN CREATE ROLE campaign LOGIN IN ROLE penlink_ingest; END IF; END \$\$" >/dev/null || return 1
  cat >>"$W/penlinkd.conf" <<CCONF
[central]
url = host=$PGSOCK dbname=$db user=campaign
site = campaign-run-$1
retry_max_s = 1
CCONF
}
# central_drain: the daemon's outbox empty (nothing pending, no audit
# entries), or a note after a minute.
central_drain() {
  local i st
  for i in $(seq $((300 * SLOW))); do
    st=$(ctl --json central status 2>/dev/null | jq -r '.pending + .audit_pending' 2>/dev/null)
    [ "$st" = 0 ] && return 0
    sleep 0.2
  done
  note "central: outbox not empty $((60 * SLOW))s after the run ($(ctl --json central status 2>&1 | tr -d '\n' | cut -c1-300))"
}
# central_judge RUN: central's (serial, uuid, digest of the record bytes it
# holds) against the archive's; sets C_SESSIONS C_LOST C_DUP C_ALTERED.
central_judge() {
  local db="run_$1"
  sqlite3 "$W/archive.db" "SELECT serial || ' ' || lower(hex(uuid)) || ' ' || lower(hex(sha256)) FROM sessions" \
    2>>"$W/driver.err" | sort >"$W/local.keys"
  psql_c "$db" -c "SELECT serial || ' ' || replace(uuid::text, '-', '') || ' ' || encode(sha256(record), 'hex')
    FROM penlink.sessions" 2>>"$W/driver.err" | sort >"$W/central.keys"
  C_SESSIONS=$(wc -l <"$W/central.keys")
  C_DUP=$(cut -d' ' -f1,2 "$W/central.keys" | uniq -d | wc -l)
  # Keys the archive has and central lacks; keys in both with other bytes,
  # and keys only central has (it may only hold what the site archived).
  C_LOST=$(comm -23 <(cut -d' ' -f1,2 "$W/local.keys" | sort -u) <(cut -d' ' -f1,2 "$W/central.keys" | sort -u) | wc -l)
  local both_keys differ extra
  differ=$(comm -3 "$W/local.keys" "$W/central.keys" | sed 's/^\t//' | cut -d' ' -f1,2 | sort | uniq -d | wc -l)
  extra=$(comm -13 <(cut -d' ' -f1,2 "$W/local.keys" | sort -u) <(cut -d' ' -f1,2 "$W/central.keys" | sort -u) | wc -l)
  C_ALTERED=$((differ + extra))
  [ $((C_LOST + C_DUP + C_ALTERED)) -eq 0 ] ||
    note "central differs from the archive: $(diff "$W/local.keys" "$W/central.keys" | head -n 6 | tr '\n' ' ')"
  [ "$KEEP" = 1 ] || [ $((C_LOST + C_DUP + C_ALTERED)) -gt 0 ] ||
    psql_c postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
}

# ------------------------------------------------------------------ one run
# State of the run in progress (globals, so helpers need no subshells).
W="" DPID="" DLIVE=0 CRASHES=0 NOTES=() NP=0
declare -a P_PID P_PORT P_FLASH P_ARGS P_FAULTS P_DISC P_HOSTILE P_MUTE P_SERIAL P_SESS P_LIFE

log() { [ "$VERBOSE" = 1 ] && echo "  [$(( $(now_ms) - RUN_T0 ))ms] $*" >&2; return 0; }
note() { NOTES+=("$*"); log "NOTE $*"; }

ctl() { timeout $(( 30 * SLOW )) "$PENCTL" --socket "$W/sock" --timeout $(( 10000 * SLOW )) "$@"; }

# A daemon that died without our kill, or whose log has a sanitizer report.
crash() { CRASHES=$((CRASHES + 1)); note "daemon crash: $*"; }

start_daemon() {
  local args=() k i
  for k in $(seq 0 $((NP - 1))); do
    [ -n "${P_PORT[$k]}" ] && args+=(--port "${P_PORT[$k]}")
  done
  echo "=== start $(now_ms)" >>"$W/daemon.log"
  "${WRAP[@]}" "$PENLINKD" --foreground --no-usb --socket "$W/sock" --db "$W/archive.db" \
    --config "$W/penlinkd.conf" --log-level info "${args[@]}" >>"$W/daemon.log" 2>&1 &
  DPID=$! DLIVE=1
  for i in $(seq $((200 * SLOW))); do
    kill -0 "$DPID" 2>/dev/null || break
    ctl list >/dev/null 2>&1 && { log "daemon $DPID up"; return 0; }
    sleep 0.05
  done
  if ! kill -0 "$DPID" 2>/dev/null; then
    local rc; { wait "$DPID"; } 2>/dev/null; rc=$?
    DLIVE=0
    crash "penlinkd exited $rc while starting (see $W/daemon.log)"
    return 1
  fi
  crash "penlinkd did not answer on its socket within $((10 * SLOW))s"
  return 1
}

# stop_daemon SIG: SIGKILL (a crash we cause) or SIGTERM (must exit 0).
stop_daemon() {
  local sig=$1 rc i
  [ "$DLIVE" = 1 ] || return 0
  if ! kill -0 "$DPID" 2>/dev/null; then
    { wait "$DPID"; } 2>/dev/null; rc=$?; DLIVE=0
    crash "penlinkd died by itself (status $rc) before the driver's $sig"
    return 0
  fi
  kill -"$sig" "$DPID" 2>/dev/null
  if [ "$sig" = TERM ]; then
    for i in $(seq $((400 * SLOW))); do
      kill -0 "$DPID" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$DPID" 2>/dev/null; then
      crash "penlinkd still running $((20 * SLOW))s after SIGTERM"
      kill -KILL "$DPID" 2>/dev/null
    fi
  fi
  { wait "$DPID"; } 2>/dev/null; rc=$?; DLIVE=0
  log "daemon $DPID stopped by SIG$sig: status $rc"
  if [ "$sig" = TERM ] && [ "$rc" -ne 0 ]; then
    crash "penlinkd exited $rc after SIGTERM (expected 0)"
  fi
}

# The daemon is alive, or it died on its own: a crash; restart it.
check_daemon() {
  [ "$DLIVE" = 1 ] || return 0
  if ! kill -0 "$DPID" 2>/dev/null; then
    local rc
    { wait "$DPID"; } 2>/dev/null; rc=$?; DLIVE=0
    crash "penlinkd died by itself (status $rc)"
    start_daemon
  fi
}

# start_pen K [extra penemu args...]: a new life of pen K on its flash.
start_pen() {
  local k=$1 i; shift
  P_LIFE[$k]=$(( ${P_LIFE[$k]:-0} + 1 ))
  local out="$W/pen$k.${P_LIFE[$k]}.out"
  "$PENEMU" --pty --flash "${P_FLASH[$k]}" ${P_ARGS[$k]} "$@" >"$out" 2>>"$W/pen$k.err" &
  P_PID[$k]=$!
  P_PORT[$k]=""
  for i in $(seq 400); do
    [ -s "$out" ] && break
    kill -0 "${P_PID[$k]}" 2>/dev/null || break
    sleep 0.02
  done
  P_PORT[$k]=$(head -n1 "$out" 2>/dev/null)
  if [ -z "${P_PORT[$k]}" ]; then
    log "pen $k did not start: $(grep -v '^Try' "$W/pen$k.err" | tail -n1)"
    return 1
  fi
  log "pen $k life ${P_LIFE[$k]} pid ${P_PID[$k]} on ${P_PORT[$k]} $*"
}

# The faults of pen K's next life: its own set, plus a disconnect while it
# has disconnect lives left, plus muteness on its first life if chosen.
pen_life_args() {
  local k=$1
  # shellcheck disable=SC2206
  LIFE_ARGS=(${P_FAULTS[$k]})
  # Budgets drawn with the plan, so pen exits (timing) never shift the
  # random sequence.
  local budgets=(${P_DISC[$k]})
  if [ ${#budgets[@]} -gt 0 ]; then
    LIFE_ARGS+=(--fault-disconnect-after "${budgets[0]}")
    P_DISC[$k]="${budgets[*]:1}"
  fi
  [ "${P_MUTE[$k]}" = 2 ] && P_MUTE[$k]=3
  if [ "${P_MUTE[$k]}" = 1 ]; then
    LIFE_ARGS+=(--fault-mute)
    P_MUTE[$k]=2
  fi
}

# A pen that is gone (its disconnect fault fired, or we killed it) comes back
# on the same flash, like a re-plug; the daemon is told if it runs.
replug() {
  local k=$1
  pen_life_args "$k"
  start_pen "$k" "${LIFE_ARGS[@]}" || return 1
  T_REPLUGS=$((T_REPLUGS + 1))
  if [ "$DLIVE" = 1 ]; then
    ctl attach "${P_PORT[$k]}" >/dev/null 2>>"$W/driver.err" || log "attach ${P_PORT[$k]} failed"
  fi
}

reap_pens() {
  local k rc
  for k in $(seq 0 $((NP - 1))); do
    [ -n "${P_PID[$k]}" ] || continue
    kill -0 "${P_PID[$k]}" 2>/dev/null && continue
    { wait "${P_PID[$k]}"; } 2>/dev/null; rc=$?
    log "pen $k (pid ${P_PID[$k]}) exited $rc"
    P_PID[$k]=""
    if [ "$rc" -eq 1 ] || [ "$rc" -eq 2 ]; then
      # penemu refused its arguments or its flash: the campaign's fault,
      # and replugging would only repeat it.
      DRIVER_ERR=$((DRIVER_ERR + 1))
      note "campaign error: pen $k exited $rc: $(grep -v '^Try' "$W/pen$k.err" | tail -n1)"
      continue
    fi
    # A hostile pen stays unplugged once it is gone.
    [ -n "${P_HOSTILE[$k]:-}" ] || replug "$k"
  done
}

# While the daemon is down: every session a pen lists as archived must have
# a committed row in the archive.  Pens that do not answer are skipped.
snapshot() {
  local k pairs=() out
  for k in $(seq 0 $((PENS - 1))); do
    [ -n "${P_PID[$k]}" ] && [ "${P_MUTE[$k]}" != 2 ] || continue
    out=$(timeout $((20 * SLOW)) "$PENCTL" --port "${P_PORT[$k]}" --json --timeout 1500 \
      sessions list 2>>"$W/driver.err") || { log "snapshot: pen $k did not answer"; continue; }
    while read -r u; do
      [ -n "$u" ] && pairs+=("${P_SERIAL[$k]}" "$u")
    done < <(jq -r '.sessions[] | select(.archived) | .uuid' <<<"$out")
  done
  [ -f "$W/archive.db" ] || return 0
  T_SNAPSHOTS=$((T_SNAPSHOTS + 1))
  if ! out=$("$CAMPAIGN_CHECK" reclaimed "$W/archive.db" "${pairs[@]}" 2>&1); then
    RECLAIMED_MID=$(( RECLAIMED_MID + $(sed -n 's/^reclaimed-missing //p' <<<"$out" | tail -n1) + 0 ))
    note "snapshot: $out"
  fi
  log "snapshot: ${#pairs[@]} archived-on-pen entries checked"
}

# Are all pens attached, idle, and every session in the archive?
all_done() {
  local list sess n_ok k serial st
  list=$(ctl --json list 2>/dev/null) || return 1
  sess=$(ctl --json sessions list 2>/dev/null) || return 1
  n_ok=$(jq '[.sessions[] | select(.serial | startswith("CMP-"))] | length' <<<"$sess")
  LAST_STATE="archive $n_ok/$EXPECTED; pens: $(jq -c '[.pens[] | [.serial, .state, .sessions_pending, .download_done, .last_error]]' <<<"$list")"
  PROGRESS="$n_ok:$(jq -c '[.pens[] | .download_done]' <<<"$list")"
  # Reattach what the daemon dropped (detached after timeouts, or failed).
  for k in $(seq 0 $((PENS - 1))); do
    [ -n "${P_PID[$k]}" ] || continue
    serial=${P_SERIAL[$k]}
    st=$(jq -r --arg p "${P_PORT[$k]}" '[.pens[] | select(.port == $p) | .state][0] // "absent"' <<<"$list")
    if [ "$st" = absent ]; then
      log "pen $k ($serial) not attached: attach ${P_PORT[$k]}"
      ctl attach "${P_PORT[$k]}" >/dev/null 2>>"$W/driver.err"
    elif [ "$st" = failed ]; then
      log "pen $k ($serial) failed: detach, attach"
      ctl detach "${P_PORT[$k]}" >/dev/null 2>>"$W/driver.err"
      ctl attach "${P_PORT[$k]}" >/dev/null 2>>"$W/driver.err"
    fi
  done
  [ "$n_ok" -ge "$EXPECTED" ] || return 1
  [ "$(jq '[.pens[] | select((.serial | startswith("CMP-")) and .state == "idle" and .sessions_pending == 0)] | length' <<<"$list")" -ge "$PENS" ]
}

one_run() {
  local run=$1 k i ev nev action
  RUN_T0=$(now_ms)
  W=$(mktemp -d -t penlink-campaign.XXXXXX)
  DPID="" DLIVE=0 CRASHES=0 NOTES=() RECLAIMED_MID=0 EXPECTED=0 DRIVER_ERR=0
  P_PID=() P_PORT=() P_FLASH=() P_ARGS=() P_FAULTS=() P_DISC=() P_HOSTILE=() P_MUTE=() P_SERIAL=()
  P_SESS=() P_LIFE=()
  local kills=0 terms=0 penkills=0 snipes=0 desc=""
  seed_rng "$SEED" "$run"

  # --- the plan
  local window timeout_ms
  rnd 0 3; window=(0 1 2 4); window=${window[$RV]}
  rnd 0 2; timeout_ms=(400 1000 2000); timeout_ms=$(( ${timeout_ms[$RV]} * SLOW ))
  cat >"$W/penlinkd.conf" <<CONF
[daemon]
socket_mode = 0600
[pens]
request_timeout_ms = $timeout_ms
handshake_timeout_ms = $((10000 * SLOW))
download_window = $window
CONF
  if [ "$CENTRAL" = 1 ] && ! central_run_db "$run"; then
    note "central: cannot set up database run_$run"
    DRIVER_ERR=$((DRIVER_ERR + 1))
  fi
  desc="win=$window rto=$timeout_ms"
  local sizes=(3000 20000 120000 500000 1500000)
  [ "$SMALL" = 1 ] && sizes=(2000 8000 30000 60000 120000)
  for k in $(seq 0 $((PENS - 1))); do
    local n bytes f=()
    rnd 1 5; n=$RV
    rnd 0 4; bytes=${sizes[$RV]}
    P_SERIAL[$k]="CMP-$run-$k"
    P_FLASH[$k]="$W/pen$k.flash"
    P_SESS[$k]=$(( n * bytes ))
    P_ARGS[$k]="--serial ${P_SERIAL[$k]} --sessions $n --session-bytes $bytes --seed $((run * 100 + k))"
    chance 25 && { rnd 1 400; f+=(--fault-garbage "$RV"); }
    chance 25 && { rnd 6 40; f+=(--fault-corrupt "$RV"); }
    chance 25 && { rnd 8 60; f+=(--fault-drop "$RV"); }
    chance 15 && { rnd 1 4; f+=(--fault-delay "$RV"); }
    chance 20 && { rnd 200 3000; f+=(--fault-boot-delay "$RV"); }
    local reboots=0
    has --fault-reboot-every && chance 8 && { rnd 400000 2000000; f+=(--fault-reboot-every "$RV"); reboots=1; }
    if [ ${#NEWFLAGS[@]} -gt 0 ]; then
      has --fault-seed && { rnd 1 1000000; f+=(--fault-seed "$RV"); }
      has --fault-drop-bytes && chance 15 && { rnd 7 200; f+=(--fault-drop-bytes "$RV"); }
      has --fault-dup && chance 20 && { rnd 3 30; f+=(--fault-dup "$RV"); }
      has --fault-stall && chance 15 && { rnd 10 200; local sn=$RV; rnd 50 $((timeout_ms * 2)); f+=(--fault-stall "$sn:$RV"); }
      if has --fault-late && chance 20; then
        rnd 5 80; f+=(--fault-late "$RV")
        has --fault-late-ms && { rnd 50 $((timeout_ms * 2)); f+=(--fault-late-ms "$RV"); }
      fi
    fi
    P_FAULTS[$k]="${f[*]}"
    P_DISC[$k]=""
    if chance 30; then
      local lives b
      rnd 1 3; lives=$RV
      for b in $(seq "$lives"); do
        rnd 3000 $(( ${P_SESS[$k]} + 20000 )); P_DISC[$k]+=" $RV"
      done
    fi
    # A pen that reboots has a life budget too: its reboot is a re-plug.
    if [ "$reboots" = 0 ] && has --fault-reboot-after && chance 15; then
      rnd 5000 $(( ${P_SESS[$k]} + 20000 )); P_FAULTS[$k]+=" --fault-reboot-after $RV"
    fi
    chance 8 && P_MUTE[$k]=1 || P_MUTE[$k]=0
    desc+=" | ${P_SERIAL[$k]}: ${n}x$bytes ${P_FAULTS[$k]}"
    [ -n "${P_DISC[$k]}" ] && desc+=" unplug-after=${P_DISC[$k]# }"
    [ "${P_MUTE[$k]}" = 1 ] && desc+=" mute-first"
    EXPECTED=$((EXPECTED + n))
  done
  # Sometimes a hostile pen joins (--hostile MODE): the daemon need not
  # archive it, but it must not disturb the others nor crash the daemon.
  NP=$PENS
  if [ ${#HOSTILE_MODES[@]} -gt 0 ] && chance 12; then
    rnd 0 $(( ${#HOSTILE_MODES[@]} - 1 ))
    k=$PENS NP=$((PENS + 1))
    P_HOSTILE[$k]=${HOSTILE_MODES[$RV]}
    P_SERIAL[$k]="HST-$run"
    P_FLASH[$k]="$W/pen$k.flash"
    P_ARGS[$k]="--serial HST-$run --sessions 2 --session-bytes 20000 --seed $((run * 100 + k))"
    P_FAULTS[$k]="--hostile ${P_HOSTILE[$k]}" P_DISC[$k]="" P_MUTE[$k]=0 P_SESS[$k]=0
    desc+=" | HST-$run: --hostile ${P_HOSTILE[$k]}"
  fi
  local schedule=()
  rnd 1 6; nev=$RV
  for i in $(seq "$nev"); do
    local delay act
    rnd 50 2500; delay=$RV
    rnd 0 99
    if   [ "$RV" -lt 35 ]; then act=kill
    elif [ "$RV" -lt 50 ]; then act=snipe
    elif [ "$RV" -lt 62 ]; then act=term
    elif [ "$RV" -lt 75 ]; then act=penkill
    elif [ "$RV" -lt 83 ]; then act=penterm
    elif [ "$RV" -lt 90 ]; then act=storm
    else act=wait; fi
    rnd 0 $((PENS - 1)); local who=$RV
    rnd 0 600; local pause=$RV
    rnd 0 99; local snap=$RV
    rnd 0 $(( ${#SNIPE_AT[@]} - 1 )); local pat=$RV
    schedule+=("$delay:$act:$who:$pause:$snap:$pat")
  done
  desc+=" | events ${schedule[*]}"
  echo "$desc" >"$W/plan.txt"
  log "plan: $desc"

  # --- start: pens, then the daemon
  for k in $(seq 0 $((NP - 1))); do
    pen_life_args "$k"
    start_pen "$k" "${LIFE_ARGS[@]}"
  done
  start_daemon

  # --- chaos
  for ev in "${schedule[@]}"; do
    IFS=: read -r delay action who pause snap pat <<<"$ev"
    local until=$(( $(now_ms) + delay * SLOW ))
    while [ "$(now_ms)" -lt "$until" ]; do
      sleep 0.05
      reap_pens
      check_daemon
    done
    log "event $action pen=$who"
    case $action in
      snipe)
        # kill -9 the moment the daemon logs a chosen step (a commit, the
        # start of a download...), within ~10 ms of it.
        local seen until2
        seen=$(grep -c '' "$W/daemon.log")
        until2=$(( $(now_ms) + 4000 * SLOW ))
        while [ "$(now_ms)" -lt "$until2" ]; do
          tail -n +$((seen + 1)) "$W/daemon.log" | grep -q -- "${SNIPE_AT[$pat]}" && break
          sleep 0.01
        done
        log "snipe at '${SNIPE_AT[$pat]}'"
        stop_daemon KILL; kills=$((kills + 1)) snipes=$((snipes + 1))
        [ "$snap" -lt 33 ] && snapshot
        reap_pens
        start_daemon
        ;;
      storm)
        # Several kill -9 in a row, each soon after the restart.
        local j
        for j in $(seq $((2 + who % 4))); do
          sleep "$(printf '0.%03d' $(( (pause * j * 7) % 400 + 30 )))"
          stop_daemon KILL; kills=$((kills + 1))
          reap_pens
          start_daemon
        done
        ;;
      kill|term)
        [ "$action" = kill ] && { stop_daemon KILL; kills=$((kills + 1)); } ||
          { stop_daemon TERM; terms=$((terms + 1)); }
        # A third of the kills: check the reclaim invariant while it is down.
        [ "$snap" -lt 33 ] && snapshot
        sleep "$(printf '0.%03d' "$pause")"
        reap_pens
        start_daemon
        ;;
      penkill|penterm)
        if [ -n "${P_PID[$who]}" ]; then
          [ "$action" = penkill ] && kill -KILL "${P_PID[$who]}" || kill -TERM "${P_PID[$who]}"
          { wait "${P_PID[$who]}"; } 2>/dev/null
          P_PID[$who]=""
          penkills=$((penkills + 1))
          sleep "$(printf '0.%03d' "$pause")"
          replug "$who"
        fi
        ;;
      wait) ;;
    esac
  done

  # --- let everything finish: mute pens come back speaking, unplugs stop.
  for k in $(seq 0 $((PENS - 1))); do
    P_DISC[$k]=""
    if [ "${P_MUTE[$k]}" = 2 ] && [ -n "${P_PID[$k]}" ]; then
      kill -TERM "${P_PID[$k]}"; { wait "${P_PID[$k]}"; } 2>/dev/null; P_PID[$k]=""
      P_MUTE[$k]=3
      replug "$k"
    fi
  done
  [ "$DLIVE" = 1 ] || start_daemon
  # A minute, plus 3 s a session and 10 s a megabyte: a pen that reboots
  # or drops replies costs a request timeout each time.
  local total_bytes=0
  for k in $(seq 0 $((PENS - 1))); do total_bytes=$((total_bytes + ${P_SESS[$k]})); done
  # Past that, more time is given while the archive or a download moves
  # (heavy corruption is slow, not wrong), up to three times as long; a
  # minute without any progress is a stall: a liveness failure.
  local t0 limit hard last_move last_sig="" finished=0 why=""
  t0=$(now_ms)
  limit=$(( t0 + (60000 + EXPECTED * 3000 + total_bytes / 100) * SLOW ))
  hard=$(( t0 + 3 * (limit - t0) )) last_move=$t0
  LAST_STATE="" PROGRESS=""
  while :; do
    reap_pens
    check_daemon
    if all_done; then finished=1; break; fi
    [ "$PROGRESS" != "$last_sig" ] && { last_sig=$PROGRESS; last_move=$(now_ms); }
    if [ "$(now_ms)" -ge "$hard" ]; then why="still moving after $(( (hard - t0) / 1000 ))s"; break; fi
    if [ "$(now_ms)" -ge "$limit" ] && [ $(( $(now_ms) - last_move )) -ge $((60000 * SLOW)) ]; then
      why="no progress for $((60 * SLOW))s"; break
    fi
    sleep 0.3
  done
  [ "$finished" = 1 ] || note "not finished ($why): $LAST_STATE"
  [ "$CENTRAL" = 1 ] && [ "$DLIVE" = 1 ] && central_drain
  stop_daemon TERM
  for k in $(seq 0 $((NP - 1))); do
    [ -n "${P_PID[$k]}" ] || continue
    kill -TERM "${P_PID[$k]}" 2>/dev/null; { wait "${P_PID[$k]}"; } 2>/dev/null
  done
  if grep -Eq 'AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error|==[0-9]+== ' "$W/daemon.log"; then
    crash "sanitizer or valgrind report in the daemon's log: $(grep -Em1 'Sanitizer|runtime error|==[0-9]+== ' "$W/daemon.log")"
  fi

  # What the pens injected (printed by penemu on a clean exit).
  local kv
  for kv in $(sed -n 's/^penemu: faults injected:\(.*\) (.*/\1/p' "$W"/pen*.err 2>/dev/null); do
    FIRED[${kv%%=*}]=$(( ${FIRED[${kv%%=*}]:-0} + ${kv#*=} ))
  done

  # --- judge
  local out summary lost dup altered reclaimed phantom sessions unreclaimed derived pending
  local flashes=("${P_FLASH[@]:0:PENS}")
  [ "$NP" -gt "$PENS" ] && flashes+=("?${P_FLASH[$PENS]}")
  out=$("$CAMPAIGN_CHECK" final "$W/archive.db" "${flashes[@]}" 2>&1)
  local crc=$?
  summary=$(grep '^sessions ' <<<"$out" | tail -n1)
  if [ -z "$summary" ] || [ "$crc" -ge 2 ]; then
    note "checker failed ($crc): $out"
    lost=$EXPECTED dup=0 altered=0 reclaimed=0 phantom=0 sessions=$EXPECTED unreclaimed=0
  else
    read -r _ sessions _ lost _ dup _ altered _ reclaimed _ phantom _ unreclaimed _ derived _ pending <<<"$summary"
    # Wrong event or sample rows make every export of the session wrong.
    altered=$((altered + derived))
    T_PENDING=$((T_PENDING + pending))
    [ "$crc" -eq 0 ] || note "$(grep -v '^sessions \|^unreclaimed' <<<"$out" | head -n 20)"
    T_UNRECLAIMED=$((T_UNRECLAIMED + unreclaimed))
    [ "$unreclaimed" -eq 0 ] || note "$(grep '^unreclaimed' <<<"$out" | head -n 5)"
  fi
  [ "$sessions" -ge "$EXPECTED" ] || note "the pens hold $sessions sessions, the plan made $EXPECTED"
  reclaimed=$((reclaimed + RECLAIMED_MID))
  T_RUNS=$((T_RUNS + 1)) T_SESSIONS=$((T_SESSIONS + sessions))
  T_LOST=$((T_LOST + lost)) T_DUP=$((T_DUP + dup)) T_ALTERED=$((T_ALTERED + altered + phantom))
  T_RECLAIMED=$((T_RECLAIMED + reclaimed)) T_CRASHES=$((T_CRASHES + CRASHES)) T_PHANTOM=$((T_PHANTOM + phantom))
  # Downloads a kill or an unplug interrupted and the next attach resumed.
  local resumes
  resumes=$(grep -Ec 'resuming session .* at offset [1-9]' "$W/daemon.log")
  T_RESUMES=$((T_RESUMES + resumes))
  T_KILLS=$((T_KILLS + kills)) T_SNIPES=$((T_SNIPES + snipes)) T_TERMS=$((T_TERMS + terms)) T_PENKILLS=$((T_PENKILLS + penkills))
  local bad=$((lost + dup + altered + phantom + reclaimed + CRASHES)) ctext=""
  if [ "$CENTRAL" = 1 ]; then
    central_judge "$run"
    T_C_SESSIONS=$((T_C_SESSIONS + C_SESSIONS)) T_C_LOST=$((T_C_LOST + C_LOST))
    T_C_DUP=$((T_C_DUP + C_DUP)) T_C_ALTERED=$((T_C_ALTERED + C_ALTERED))
    bad=$((bad + C_LOST + C_DUP + C_ALTERED))
    ctext="; central $C_SESSIONS: lost $C_LOST, duplicated $C_DUP, altered $C_ALTERED"
  fi
  local secs=$(( ($(now_ms) - RUN_T0) / 100 ))
  printf 'run %d: %d pens, %d sessions, %d kill -9 (%d sniped), %d SIGTERM, %d pen kills, %d resumes: lost %d, duplicated %d, altered %d, wrongly reclaimed %d, crashes %d%s (%d.%ds)%s\n' \
    "$run" "$PENS" "$sessions" "$kills" "$snipes" "$terms" "$penkills" "$resumes" "$lost" "$dup" "$((altered + phantom))" \
    "$reclaimed" "$CRASHES" "$ctext" $((secs / 10)) $((secs % 10)) "$([ "$bad" -gt 0 ] && echo ' FAILED')"
  local n
  for n in "${NOTES[@]}"; do echo "  $n"; done
  T_DRIVER_ERR=$((T_DRIVER_ERR + DRIVER_ERR))
  if [ "$bad" -gt 0 ] || [ "$finished" = 0 ] || [ "$DRIVER_ERR" -gt 0 ]; then
    FAILED_RUNS+=("$run")
    echo "  plan: $(cat "$W/plan.txt")"
    echo "  kept: $W (daemon.log, pen*.err, archive.db, pen*.flash)"
    echo "  replay: $0 --seed $SEED --first $run --runs 1 --pens $PENS$([ "$SMALL" = 1 ] && echo ' --small')$([ "$CENTRAL" = 1 ] && echo ' --central') -v"
  elif [ "$KEEP" = 1 ]; then
    echo "  kept: $W"
  else
    rm -rf "$W"
  fi
}

summary() {
  echo "campaign: $T_KILLS kill -9 ($T_SNIPES timed to a logged step), $T_TERMS SIGTERM, $T_PENKILLS pen kills, $T_REPLUGS re-plugs, $T_RESUMES resumed downloads, $T_SNAPSHOTS mid-run reclaim checks, wrongly reclaimed $T_RECLAIMED, phantom $T_PHANTOM, left unreclaimed on a pen $T_UNRECLAIMED, samples still being filled at the end $T_PENDING, campaign errors $T_DRIVER_ERR${FAILED_RUNS[*]:+, failed runs: ${FAILED_RUNS[*]}}"
  fired=""
  for kv in $(printf '%s\n' "${!FIRED[@]}" | sort); do fired+=" $kv=${FIRED[$kv]}"; done
  echo "campaign: faults the pens injected (counted at clean exits):${fired:- none}"
  echo "runs $T_RUNS, sessions checked $T_SESSIONS, lost $T_LOST, duplicated $T_DUP, altered $T_ALTERED, daemon crashes $T_CRASHES$([ "$CENTRAL" = 1 ] && echo ", central: sessions $T_C_SESSIONS, lost $T_C_LOST, duplicated $T_C_DUP, altered $T_C_ALTERED")"
}

cleanup() {
  local k
  [ "$DLIVE" = 1 ] && kill -KILL "$DPID" 2>/dev/null
  for k in "${!P_PID[@]}"; do [ -n "${P_PID[$k]}" ] && kill -KILL "${P_PID[$k]}" 2>/dev/null; done
  wait 2>/dev/null
  central_teardown
}
trap cleanup EXIT
# Interrupted (a long campaign stopped by hand): the figures of the runs
# that completed, then exit 130.
trap 'echo "campaign: interrupted during run ${run:-?}; figures for the $T_RUNS completed runs" >&2; summary; exit 130' INT TERM

echo "campaign: seed $SEED, runs $FIRST..$((FIRST + RUNS - 1)), $PENS pens$([ ${#WRAP[@]} -gt 0 ] && echo ", daemon under ${WRAP[0]}"); $NS_NOTE"
if [ ${#NEWFLAGS[@]} -gt 0 ]; then
  echo "campaign: penemu's newer fault flags in the mix: ${NEWFLAGS[*]}"
else
  echo "campaign: penemu has none of the newer fault flags; using garbage, corrupt, drop, delay, boot-delay, mute, disconnect"
fi
[ "$CENTRAL" = 1 ] && { central_setup; echo "campaign: central PostgreSQL in $PGW, a database per run"; }
for run in $(seq "$FIRST" $((FIRST + RUNS - 1))); do
  one_run "$run"
done
summary
[ $((T_LOST + T_DUP + T_ALTERED + T_RECLAIMED + T_CRASHES + T_C_LOST + T_C_DUP + T_C_ALTERED)) -eq 0 ] && [ ${#FAILED_RUNS[@]} -eq 0 ]
