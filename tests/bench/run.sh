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
for b in bench_daemon_idle bench_daemon_scale; do
  echo "--- $b"
  out=$(bash "$(dirname "$0")/$b.sh" "$build" 2>&1)
  rc=$?
  echo "$out"
  [ $rc -eq 0 ] || { echo "$b failed (exit $rc)"; exit 1; }
  summary+=("$(tail -n1 <<<"$out")")
done
echo "--- benchmark figures"
printf '%s\n' "${summary[@]}"
