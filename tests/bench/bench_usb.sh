#!/bin/bash
# Session download over real USB (the kernel's cdc_acm on a dummy_hcd gadget)
# as a ratio to the raw throughput of the same link, both measured in this
# boot, at high speed and at full speed (dummy_hcd is_high_speed=0, the speed
# most pen microcontrollers run).  Target: >= 0.90 (brief §6).
#
# Runs inside the USB test VM (tests/usb-vm), which provides /pl/gadget.sh,
# penemu, penctl and bench_ttyraw.  Rounds alternate raw and download so both
# see the same machine; the best of each is compared.  The figures are
# printed last.
#
#   bench_usb.sh [MB_HIGH] [MB_FULL] [ROUNDS]     (default 8, 2, 2)
set -uo pipefail
export PATH=/pl:/bin:/sbin:/usr/bin
. /pl/gadget.sh
fail() { echo "bench_usb: $*" >&2; exit 1; }
mb_high=${1:-8}
mb_full=${2:-2}
rounds=${3:-2}
W=/tmp/bench-usb
rm -rf "$W"; mkdir -p "$W"

# speed_setup SPEED: dummy_hcd reloaded at that speed, one pen gadget bound.
speed_setup() {
  local hs=$([ "$1" = high ] && echo 1 || echo 0)
  gadget_remove bench
  rmmod dummy_hcd 2>/dev/null
  insmod /lib/modules/dummy_hcd.ko is_high_speed=$hs num=1 || fail "cannot load dummy_hcd is_high_speed=$hs"
  gadget bench PEN-BENCH-1
  plug bench dummy_udc.0
  wait_for 20 "the cdc_acm tty" have_acm PEN-BENCH-1
  ACM=$(acm_of PEN-BENCH-1)
  local dev=/sys/class/tty/${ACM#/dev/}/device/..
  echo "$1 speed: $(cat "$dev/speed") Mbit/s link, $GS -> $ACM"
}

# cpu_ticks PID LAST: user+system clock ticks of PID so far, or LAST once
# it is gone.
cpu_ticks() {
  local f
  read -r -a f <"/proc/$1/stat" 2>/dev/null || { echo "$2"; return; }
  echo $(( f[13] + f[14] ))
}

best() { awk 'BEGIN { m = 0 } { if ($1 > m) m = $1 } END { printf "%.3f", m }'; }

# measure SPEED MB: prints "ratio download raw".
measure() {
  local speed=$1 mb=$2 bytes=$(( $2 * 1000000 )) r raw dl t0 t1 pen
  speed_setup "$speed"
  # One session of the measured size, made once; pulls keep it on the pen.
  penemu --tty "$GS" --serial PEN-BENCH-1 --flash "$W/$speed.flash" --sessions 1 \
    --session-bytes "$bytes" --seed 77 >"$W/emu.out" 2>"$W/emu.err" &
  pen=$!
  penctl --port "$ACM" --timeout 10000 --json sessions list >"$W/list.json" ||
    fail "cannot list the pen's session: $(cat "$W/emu.err")"
  local size; size=$(jq '.sessions[0].size' "$W/list.json")
  kill "$pen"; wait "$pen"
  : >"$W/raw"; : >"$W/dl"
  for r in $(seq "$rounds"); do
    raw=$(bench_ttyraw "$GS" "$ACM" "$size" | tail -n1) || fail "raw transfer failed"
    echo "$raw" >>"$W/raw"
    penemu --tty "$GS" --flash "$W/$speed.flash" >>"$W/emu.out" 2>>"$W/emu.err" &
    pen=$!
    rm -rf "$W/pull"; mkdir -p "$W/pull"
    t0=$EPOCHREALTIME
    penctl --port "$ACM" --timeout 10000 sessions pull --keep --out "$W/pull" >/dev/null &
    local host=$!
    # CPU time of each side, for telling a slow link from a busy CPU.
    local host_cpu=0
    while kill -0 "$host" 2>/dev/null; do
      host_cpu=$(cpu_ticks "$host" "$host_cpu")
      sleep 0.05
    done
    wait "$host" || fail "download failed: $(tail -n 3 "$W/emu.err")"
    t1=$EPOCHREALTIME
    local pen_cpu; pen_cpu=$(cpu_ticks "$pen" 0)
    kill "$pen"; wait "$pen"
    dl=$(awk -v b="$size" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.3f", b / (z - a) / 1e6 }')
    echo "$dl" >>"$W/dl"
    echo "  round $r: raw $raw MB/s, download $dl MB/s ($size bytes, digest verified;" \
      "$(awk -v a="$t0" -v z="$t1" 'BEGIN { printf "%.2f", z - a }') s wall, CPU ticks: host $host_cpu, pen $pen_cpu)"
  done
  raw=$(best <"$W/raw"); dl=$(best <"$W/dl")
  awk -v d="$dl" -v r="$raw" 'BEGIN { printf "%.2f %s %s\n", d / r, d, r }'
}

read -r hs_ratio hs_dl hs_raw < <(measure high "$mb_high" | tee /dev/stderr | tail -n1)
[ -n "${hs_ratio:-}" ] || fail "no high-speed figure"
read -r fs_ratio fs_dl fs_raw < <(measure full "$mb_full" | tee /dev/stderr | tail -n1)
[ -n "${fs_ratio:-}" ] || fail "no full-speed figure"
gadget_remove bench
echo "usb download/raw: high speed $hs_ratio ($hs_dl vs $hs_raw MB/s), full speed $fs_ratio ($fs_dl vs $fs_raw MB/s); target >= 0.90"
