#!/usr/bin/env bash
# Wake-ups of an idle penlinkd (brief §6: none when nothing happens): two
# pens attached and fully archived, then the daemon's context switches (all
# its threads, from /proc) are counted over 10 seconds.  The figure line is
# last.
#
#   bench_daemon_idle.sh [BUILD_DIR] [SECONDS]
set -uo pipefail
build=${1:-build}; secs=${2:-10}
emu="$build/firmware-bridge/penemu"; ctl="$build/cli/penctl"; dmn="$build/daemon/penlinkd"
T=$(mktemp -d -t penlink-idle.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

ports=()
for i in 1 2; do
  "$emu" --pty --serial "PEN-I-$i" --sessions 2 --session-bytes 100000 >"$T/emu$i.out" 2>/dev/null &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$T/emu$i.out" ] && break; sleep 0.05; done
  ports+=(--port "$(head -n1 "$T/emu$i.out")")
done
sock="$T/d.sock"
"$dmn" --foreground --no-usb --socket "$sock" --db "$T/db" "${ports[@]}" 2>"$T/daemon.log" &
dpid=$!; pids+=($dpid)
for _ in $(seq 600); do
  idle=$("$ctl" --socket "$sock" --json list 2>/dev/null | jq '[.pens[] | select(.state == "idle")] | length' 2>/dev/null)
  [ "${idle:-0}" = 2 ] && break
  sleep 0.1
done
[ "${idle:-0}" = 2 ] || { echo "pens never became idle"; cat "$T/daemon.log"; exit 1; }
sleep 1   # let the last client's disconnect settle

switches() { cat /proc/"$dpid"/task/*/status | awk '/ctxt_switches/ {s += $2} END {print s}'; }
before=$(switches)
sleep "$secs"
after=$(switches)
wakeups=$((after - before))
echo "daemon idle: $wakeups wake-ups in $secs s with 2 pens attached (target 0): $([ "$wakeups" -eq 0 ] && echo PASS || echo FAIL)"
