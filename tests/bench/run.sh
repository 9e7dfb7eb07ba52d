#!/usr/bin/env bash
# Runs every benchmark from a build folder (default build/).  Each prints its
# figure on its last line; this prints those lines again at the end.
set -uo pipefail
build=${1:-build}
summary=()
for b in bench_frame bench_presets bench_download; do
  echo "--- $b"
  out=$("$build/tests/$b" 2>&1)
  rc=$?
  echo "$out"
  [ $rc -eq 0 ] || { echo "$b failed (exit $rc)"; exit 1; }
  summary+=("$(tail -n1 <<<"$out")")
done
for b in bench_daemon_idle bench_daemon_scale bench_central; do
  echo "--- $b"
  out=$(bash "$(dirname "$0")/$b.sh" "$build" 2>&1)
  rc=$?
  echo "$out"
  [ $rc -eq 0 ] || { echo "$b failed (exit $rc)"; exit 1; }
  summary+=("$(tail -n1 <<<"$out")")
done
# The USB benchmark runs inside the VM of the usbvm tests (bench_usb.sh);
# its figure is in that run's log.
vm_log="$build/tests/usb-vm/out/logs/bench"
if [ -s "$vm_log" ]; then
  echo "--- bench_usb (in the USB test VM)"
  cat "$vm_log"
  summary+=("$(grep '^usb download/raw' "$vm_log" | tail -n1)")
else
  summary+=("usb download/raw: not run (no VM log at $vm_log; ctest -L usbvm runs it)")
fi
echo "--- benchmark figures"
printf '%s\n' "${summary[@]}"
