#!/usr/bin/env bash
# N virtual pens (default 127) attached to one penlinkd at once, each holding
# one session, all downloading together (brief §6: none starves, RSS <= 32 MB).
# Prints aggregate throughput, every pen's time from attach to archived
# (fastest, median, slowest) and the slowest over the fastest, the CPU the
# daemon and the pens used per MB, and the daemon's peak RSS; the figure line
# is last and fails when a pen is not archived, slowest/fastest is over 2 or
# the peak RSS is over 32 MB.
#
#   bench_daemon_scale.sh [BUILD_DIR] [PENS] [SESSION_BYTES]
#   KEEP_LOG=FILE keeps the daemon's log, KEEP_MONITOR=FILE its events.
set -uo pipefail
build=${1:-build}; n=${2:-127}; size=${3:-1000000}
emu="$build/firmware-bridge/penemu"; ctl="$build/cli/penctl"; dmn="$build/daemon/penlinkd"
T=$(mktemp -d -t penlink-scale.XXXXXX)
pids=()
cleanup() {
  [ -n "${KEEP_LOG:-}" ] && cp "$T/daemon.log" "$KEEP_LOG" 2>/dev/null
  [ -n "${KEEP_MONITOR:-}" ] && cp "$T/monitor.jsonl" "$KEEP_MONITOR" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"
}
trap cleanup EXIT

# CPU seconds (user + system) of a process so far, from /proc (clock ticks).
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }

ports=(); emupids=()
for i in $(seq -f %03g 1 "$n"); do
  "$emu" --pty --serial "PEN-S-$i" --sessions 1 --session-bytes "$size" --seed "$((10#$i))" \
    >"$T/emu$i.out" 2>/dev/null &
  pids+=($!); emupids+=($!)
done
for i in $(seq -f %03g 1 "$n"); do
  for _ in $(seq 400); do [ -s "$T/emu$i.out" ] && break; sleep 0.05; done
  ports+=("$(head -n1 "$T/emu$i.out")")
done

sock="$T/d.sock"
# All at once: every port is named on penlinkd's command line, so the pens
# are attached together when it starts (as pens plugged in when it boots),
# and each pen's time is counted from then to its session_archived event.
# (Attaching them one penctl at a time spreads the attaches over seconds on
# a busy machine, and a pen attached seconds after the first cannot finish
# with it however fairly the daemon shares.)
port_args=(); for p in "${ports[@]}"; do port_args+=(--port "$p"); done
pens0=0; for p in "${emupids[@]}"; do pens0=$(awk -v a="$pens0" -v b="$(cpu_s "$p")" 'BEGIN{print a+b}'); done
d0=0
t0=$(date +%s%3N)
"$dmn" --foreground --no-usb --socket "$sock" --db "$T/db" --log-level "${LOG_LEVEL:-warn}" \
  "${port_args[@]}" 2>"$T/daemon.log" &
dpid=$!; pids+=($dpid)
# PERF_OUT=FILE: a profile of the daemon (perf record, cpu-clock) while it works.
if [ -n "${PERF_OUT:-}" ]; then perf record -g -e cpu-clock -o "$PERF_OUT" -p "$dpid" >/dev/null 2>&1 & pids+=($!); fi
for _ in $(seq 400); do [ -S "$sock" ] && break; sleep 0.01; done
"$ctl" --socket "$sock" --json monitor >"$T/monitor.jsonl" 2>/dev/null &
pids+=($!)
deadline=$(( $(date +%s) + 600 ))
while :; do
  archived=$(grep -c '"session_archived"' "$T/monitor.jsonl" || true)
  [ "$archived" -ge "$n" ] && break
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "timed out: $archived of $n archived"; break; fi
  sleep 0.2
done
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$dpid/status")
dcpu=$(awk -v a="$(cpu_s "$dpid")" -v b="$d0" 'BEGIN{print a-b}')
pens1=0; for p in "${emupids[@]}"; do pens1=$(awk -v a="$pens1" -v b="$(cpu_s "$p")" 'BEGIN{print a+b}'); done
pcpu=$(awk -v a="$pens1" -v b="$pens0" 'BEGIN{print a-b}')

jq -s --argjson n "$n" --argjson size "$size" --argjson rss "$rss_kb" \
   --argjson dcpu "$dcpu" --argjson pcpu "$pcpu" --argjson t0 "$t0" -r '
  def r2: . * 100 | floor / 100;
  (map(select(.kind == "session_archived")) | map({(.serial): .utc_ms}) | add // {}) as $fin
  | [$fin | to_entries[] | .value - $t0] | sort as $d
  | ($fin | length) as $done
  | (([$fin[]] | max) - $t0) as $span
  | (($d | max) / ([($d | min), 1] | max)) as $ratio
  | ($done * $size / 1e6) as $mb
  | "pens \($n), sessions archived \($done), session \($size) bytes, all attached as penlinkd starts",
    "time from attach to archived per pen: fastest \($d | min) ms, median \($d[($d | length) / 2 | floor]) ms, slowest \($d | max) ms",
    "CPU per MB archived: daemon \($dcpu * 1000 / ([$mb, 0.001] | max) | r2) ms, pens \($pcpu * 1000 / ([$mb, 0.001] | max) | r2) ms",
    "daemon scale: \($n) pens, aggregate \(($mb / ($span / 1000)) * 10 | floor / 10) MB/s, slowest/fastest \($ratio | r2) (target <= 2), \($done) of \($n) archived, peak RSS \($rss / 1024 * 10 | floor / 10) MB (target <= 32): \(if $done == $n and $rss <= 32768 and $ratio <= 2 then "PASS" else "FAIL" end)"
' "$T/monitor.jsonl"
