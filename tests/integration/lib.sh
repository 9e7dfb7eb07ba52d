# Shared by the integration tests.  Source it; it sets up a temporary folder,
# starts and stops virtual pens, and gives assertions that print what differed.
set -uo pipefail

: "${PENCTL:?PENCTL must point at the penctl binary}"
: "${PENEMU:?PENEMU must point at the penemu binary}"
read -r -a WRAP <<<"${PL_TEST_WRAPPER:-}"

T=$(mktemp -d -t penlink-it.XXXXXX)
EMU_PIDS=()
cleanup() {
  local p
  for p in "${EMU_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

CHECKS=0
fail() { echo "FAIL: $*" >&2; [ -n "${OUT+x}" ] && printf 'stdout:\n%s\nstderr:\n%s\n' "$OUT" "$ERR" >&2; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok $CHECKS - $*"; }
done_testing() { echo "$CHECKS passed, 0 failed"; }

# wait_up PID POLLS TEST...: polls TEST every 50 ms until it holds (status
# 0), PID has died or POLLS polls have passed (1).  Under a memory checker
# ($PL_TEST_WRAPPER) ten times as many polls: valgrind making a pen's 72 MiB
# record took more than 30 s on a loaded machine.  A program that died is
# noticed at once either way.
wait_up() {
  local pid=$1 polls=$2 i
  shift 2
  [ ${#WRAP[@]} -gt 0 ] && polls=$((polls * 10))
  for i in $(seq "$polls"); do
    "$@" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  "$@"
}

# start_emu NAME [penemu args...]: starts a virtual pen; sets EMU_PORT, EMU_PID.
start_emu() {
  local name=$1; shift
  "${WRAP[@]}" "$PENEMU" --pty "$@" >"$T/$name.out" 2>"$T/$name.err" &
  EMU_PID=$!
  EMU_PIDS+=("$EMU_PID")
  wait_up "$EMU_PID" 600 test -s "$T/$name.out"
  EMU_PORT=$(head -n1 "$T/$name.out")
  [ -n "$EMU_PORT" ] || { cat "$T/$name.err" >&2; fail "penemu $name did not print its port"; }
}

# stop_emu PID: SIGTERM and wait (penemu must exit cleanly: status 0).
stop_emu() {
  kill "$1" 2>/dev/null
  wait "$1"
}

# run ARGS...: runs penctl, capturing OUT, ERR and RC without aborting.
run() {
  OUT=$("${WRAP[@]}" "$PENCTL" "$@" 2>"$T/stderr")
  RC=$?
  ERR=$(cat "$T/stderr")
}

# expect RC ARGS...: run and require that exit status.
expect() {
  local want=$1; shift
  run "$@"
  [ "$RC" -eq "$want" ] || fail "penctl $* exited $RC, expected $want"
}

assert_eq() { [ "$1" == "$2" ] || fail "$3: got '$1', expected '$2'"; ok "$3"; }
assert_contains() {
  case "$1" in *"$2"*) ok "$3" ;; *) fail "$3: '$2' not found in: $1" ;; esac
}
# jqo FILTER: evaluate on the last stdout (JSON), failing if it is not JSON.
jqo() { jq -r "$1" <<<"$OUT" || fail "jq '$1' on: $OUT"; }

# ---- penlinkd
: "${PENLINKD:=}"
SOCK="$T/penlinkd.sock"
DB="$T/archive.db"

# start_daemon [penlinkd args...]: runs penlinkd in the foreground on a
# private socket and database; sets DAEMON_PID; log in $T/daemon.log.
start_daemon() {
  [ -n "$PENLINKD" ] || fail "PENLINKD is not set"
  "${WRAP[@]}" "$PENLINKD" --foreground --no-usb --socket "$SOCK" --db "$DB" "$@" \
    >>"$T/daemon.log" 2>&1 &
  DAEMON_PID=$!
  EMU_PIDS+=("$DAEMON_PID")
  wait_up "$DAEMON_PID" 400 test -S "$SOCK" && return 0
  cat "$T/daemon.log" >&2
  fail "penlinkd did not start"
}

# dctl ARGS...: penctl through the daemon (run/expect with --socket).
D=(--socket "$SOCK")

# wait_idle N [seconds]: until N pens are attached and all idle.
wait_idle() {
  local want=$1 limit=${2:-60} i n idle
  for i in $(seq $((limit * 10))); do
    run "${D[@]}" --json list
    if [ "$RC" -eq 0 ]; then
      n=$(jq '.pens | length' <<<"$OUT")
      idle=$(jq '[.pens[] | select(.state == "idle")] | length' <<<"$OUT")
      [ "$n" -eq "$want" ] && [ "$idle" -eq "$want" ] && return 0
    fi
    sleep 0.1
  done
  cat "$T/daemon.log" >&2
  fail "pens did not reach idle within ${limit}s (last: $OUT)"
}
