#!/usr/bin/env bash
# Runs every benchmark from a build folder (default build/).  Each prints its
# figures last, each line ending in PASS or FAIL against its target; this
# prints those lines again at the end.  A figure below target does not fail
# this script (the machine may be busy); a benchmark that cannot run does.
set -uo pipefail
build=${1:-build}
summary=()
figures() { grep -E ': (PASS|FAIL)$' <<<"$1"; }
for b in bench_frame bench_presets bench_download bench_paced; do
  echo "--- $b"
  out=$("$build/tests/$b" 2>&1)
  rc=$?
  echo "$out"
  [ $rc -eq 0 ] || { echo "$b failed (exit $rc)"; exit 1; }
  mapfile -t -O "${#summary[@]}" summary < <(figures "$out")
done
for b in bench_daemon_idle bench_daemon_scale bench_central; do
  echo "--- $b"
  out=$(bash "$(dirname "$0")/$b.sh" "$build" 2>&1)
  rc=$?
  echo "$out"
  [ $rc -eq 0 ] || { echo "$b failed (exit $rc)"; exit 1; }
  mapfile -t -O "${#summary[@]}" summary < <(figures "$out")
done
# The USB benchmark runs inside the VM of the usbvm tests (bench_usb.sh);
# its figure is in that run's log.
vm_log="$build/tests/usb-vm/out/logs/bench"
if [ -s "$vm_log" ]; then
  echo "--- bench_usb (in the USB test VM)"
  cat "$vm_log"
  summary+=("$(grep '^usb download' "$vm_log" | tail -n2)")
else
  summary+=("usb download/raw: not run (no VM log at $vm_log; ctest -L usbvm runs it)")
fi
echo "--- benchmark figures"
printf '%s\n' "${summary[@]}"
