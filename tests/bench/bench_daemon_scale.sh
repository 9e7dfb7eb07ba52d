#!/usr/bin/env bash
# N virtual pens (default 127) attached to one penlinkd at once, each holding
# one session, all downloading together (brief §6: none starves, RSS <= 32 MB).
# Prints aggregate throughput, the slowest pen's time to archive over the
# fastest's, and the daemon's peak RSS; the figure line is last.
#
#   bench_daemon_scale.sh [BUILD_DIR] [PENS] [SESSION_BYTES]
set -uo pipefail
build=${1:-build}; n=${2:-127}; size=${3:-1000000}
emu="$build/firmware-bridge/penemu"; ctl="$build/cli/penctl"; dmn="$build/daemon/penlinkd"
T=$(mktemp -d -t penlink-scale.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT

ports=()
for i in $(seq -f %03g 1 "$n"); do
  "$emu" --pty --serial "PEN-S-$i" --sessions 1 --session-bytes "$size" --seed "$((10#$i))" \
    >"$T/emu$i.out" 2>/dev/null &
  pids+=($!)
done
for i in $(seq -f %03g 1 "$n"); do
  for _ in $(seq 200); do [ -s "$T/emu$i.out" ] && break; sleep 0.05; done
  ports+=("$(head -n1 "$T/emu$i.out")")
done

sock="$T/d.sock"
"$dmn" --foreground --no-usb --socket "$sock" --db "$T/db" --log-level warn 2>"$T/daemon.log" &
dpid=$!; pids+=($dpid)
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
"$ctl" --socket "$sock" --json monitor >"$T/monitor.jsonl" 2>/dev/null &
pids+=($!)
sleep 0.3
# All at once, so every pen downloads while the others do.
attachers=()
for p in "${ports[@]}"; do
  { "$ctl" --socket "$sock" attach "$p" >/dev/null || echo "attach $p failed"; } &
  attachers+=($!)
done
wait "${attachers[@]}"

deadline=$(( $(date +%s) + 600 ))
while :; do
  archived=$(grep -c '"session_archived"' "$T/monitor.jsonl" || true)
  [ "$archived" -ge "$n" ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "timed out: $archived of $n archived"; break; fi
  sleep 0.2
done
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$dpid/status")

jq -s --argjson n "$n" --argjson size "$size" --argjson rss "$rss_kb" -r '
  (map(select(.kind == "attached")) | map({(.serial): .utc_ms}) | add) as $start
  | (map(select(.kind == "session_archived")) | map({(.serial): .utc_ms}) | add) as $fin
  | [$fin | to_entries[] | .value - $start[.key]] as $d
  | ($fin | length) as $done
  | (([$fin[]] | max) - ([$start[]] | min)) as $span
  | "pens \($n), sessions archived \($done), session \($size) bytes",
    "time to archive per pen: fastest \($d | min) ms, slowest \($d | max) ms",
    "daemon scale: \($n) pens, aggregate \((($done * $size) / ($span / 1000) / 1e6) * 10 | floor / 10) MB/s, slowest/fastest \((($d | max) / ([($d | min), 1] | max)) * 100 | floor / 100), \($done) of \($n) archived, peak RSS \($rss / 1024 * 10 | floor / 10) MB = \($rss / 1024 / 32 * 100 | floor / 100) of the 32 MB target: \(if $done == $n and $rss <= 32768 then "PASS" else "FAIL" end)"
' "$T/monitor.jsonl"
