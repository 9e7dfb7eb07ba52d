#!/bin/bash
# Session download over real USB (the kernel's cdc_acm on a dummy_hcd gadget)
# as a ratio to the raw throughput of the same link, both measured in this
# boot by bench_usblink, at high speed and at full speed (dummy_hcd
# is_high_speed=0, the speed most pen microcontrollers run).  Target: >= 0.90
# (brief §6).
#
# Runs inside the USB test VM (tests/usb-vm), which provides /pl/gadget.sh,
# penemu and bench_usblink.  The figures are printed last.
#
#   bench_usb.sh [MB_HIGH] [MB_FULL] [ROUNDS]     (default 8, 4, 11)
set -uo pipefail
export PATH=/pl:/bin:/sbin:/usr/bin
export PENEMU=/pl/penemu
. /pl/gadget.sh
fail() { echo "bench_usb: $*" >&2; exit 1; }
mb_high=${1:-8}
mb_full=${2:-4}
rounds=${3:-11}
W=/tmp/bench-usb
rm -rf "$W"; mkdir -p "$W"

# measure SPEED MB: dummy_hcd reloaded at that speed, one pen gadget bound,
# then bench_usblink; its progress on stderr, "median-ratio best-download
# best-raw median-cpu-per-MB-ratio" on stdout.
measure() {
  local hs=$([ "$1" = high ] && echo 1 || echo 0)
  gadget_remove bench
  rmmod dummy_hcd 2>/dev/null
  insmod /lib/modules/dummy_hcd.ko is_high_speed=$hs num=1 || fail "cannot load dummy_hcd is_high_speed=$hs"
  gadget bench PEN-BENCH-1
  plug bench dummy_udc.0
  wait_for 20 "the cdc_acm tty" have_acm PEN-BENCH-1
  local acm; acm=$(acm_of PEN-BENCH-1)
  echo "$1 speed: $(cat "/sys/class/tty/${acm#/dev/}/device/../speed") Mbit/s link, $GS -> $acm" >&2
  bench_usblink "$GS" "$acm" $(( $2 * 1000000 )) "$rounds" "$W/$1.flash" >"$W/$1.out" ||
    { cat "$W/$1.out" >&2; fail "bench_usblink failed at $1 speed"; }
  sed '$d' "$W/$1.out" >&2
  tail -n1 "$W/$1.out"
}

measure high "$mb_high" >"$W/high" || exit 1
measure full "$mb_full" >"$W/full" || exit 1
read -r hs_ratio hs_dl hs_raw hs_cpu <"$W/high"
read -r fs_ratio fs_dl fs_raw fs_cpu <"$W/full"
gadget_remove bench
verdict() { awk -v r="$1" -v c="$2" 'BEGIN { print (r >= 0.90 && c <= 1.25 ? "PASS" : "FAIL") }'; }
echo "usb download/raw, high speed: median ratio $hs_ratio (best $hs_dl vs $hs_raw MB/s), CPU per MB ${hs_cpu}x raw's (targets >= 0.90, <= 1.25): $(verdict "$hs_ratio" "$hs_cpu")"
echo "usb download/raw, full speed: median ratio $fs_ratio (best $fs_dl vs $fs_raw MB/s), CPU per MB ${fs_cpu}x raw's (targets >= 0.90, <= 1.25): $(verdict "$fs_ratio" "$fs_cpu")"
