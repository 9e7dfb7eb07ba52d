#!/usr/bin/env bash
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20)
#
# Builds the libFuzzer targets (tests/fuzz, see its README) with clang into
# build-fuzz/ (or $PL_FUZZ_BUILD), then for every target: replays its
# committed corpus tests/fuzz/corpus/<target>/ (regression), and fuzzes for
# SECONDS_PER_TARGET with new inputs going to build-fuzz/fuzz-scratch/<target>/
# (never into the committed corpus).  A crash, leak, timeout or running out
# of memory fails the target: its input is copied to
# tests/fuzz/corpus/<target>/crash-<sha1>, so it replays as a regression test
# once fixed.  One line per target, a summary line last; exit status 1 if any
# target failed, 2 for bad usage or a failed build.
# $PL_FUZZ_TARGETS (e.g. "frame ctl") limits the run to some targets.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-20}
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "fuzz: SECONDS_PER_TARGET must be a whole number of seconds, at least 1 (got '$secs')" >&2
  exit 2
fi
build=${PL_FUZZ_BUILD:-build-fuzz}
all_targets=(frame envelope record ctl preset_json config text)
read -r -a targets <<<"${PL_FUZZ_TARGETS:-${all_targets[*]}}"
# Longest input per target: a few frames; a scripted conversation; a record
# with some telemetry; a client's burst of requests; a preset file; a config;
# a few lines of untrusted text.
declare -A max_len=([frame]=4096 [envelope]=16384 [record]=65536 [ctl]=16384
                    [preset_json]=8192 [config]=4096 [text]=4096)
for t in "${targets[@]}"; do
  if [ -z "${max_len[$t]:-}" ]; then
    echo "fuzz: unknown target '$t' (known: ${all_targets[*]})" >&2
    exit 2
  fi
done

if ! command -v clang >/dev/null; then
  echo "fuzz: clang is not installed (bash scripts/deps.sh installs it)" >&2
  exit 2
fi
mkdir -p "$build"
if [ -f "$build/CMakeCache.txt" ] && ! grep -q '^PENLINK_FUZZ:BOOL=ON' "$build/CMakeCache.txt"; then
  echo "fuzz: $build/ holds a build without -DPENLINK_FUZZ=ON; remove it or set PL_FUZZ_BUILD" >&2
  exit 2
fi
echo "fuzz: building in $build/" >&2
start=$(date +%s)
if ! { CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPENLINK_FUZZ=ON &&
       cmake --build "$build" --target fuzz_all -j"$(nproc)"; } >"$build/build.log" 2>&1; then
  tail -n 40 "$build/build.log" >&2
  echo "fuzz: build failed; full log in $build/build.log" >&2
  exit 2
fi

# The record and ctl targets keep an SQLite archive: on tmpfs, so its
# fsyncs cost nothing.
tmp_base=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && tmp_base=/dev/shm
PL_FUZZ_TMPDIR=$(mktemp -d "$tmp_base/pl-fuzz.XXXXXX")
# fuzz_ctl also connects as nobody, who must reach the socket to be refused.
chmod 755 "$PL_FUZZ_TMPDIR"
export PL_FUZZ_TMPDIR
trap 'rm -rf "$PL_FUZZ_TMPDIR"' EXIT

total_execs=0
failures=0
failed=()
for t in "${targets[@]}"; do
  bin=$build/tests/fuzz/fuzz_$t
  corpus=tests/fuzz/corpus/$t
  scratch=$build/fuzz-scratch/$t
  art=$build/fuzz-artifacts/$t
  log=$build/fuzz-logs/$t.log
  mkdir -p "$scratch" "$art" "$(dirname "$log")"
  rm -f "$art"/*
  common=(-rss_limit_mb=2048 -timeout=10 "-artifact_prefix=$art/")

  # 1. Regression: every committed input once.
  shopt -s nullglob
  inputs=("$corpus"/*)
  shopt -u nullglob
  if [ ${#inputs[@]} -eq 0 ]; then
    echo "fuzz: $t: no corpus in $corpus/ (run fuzz_gen_corpus, see tests/fuzz/README.md)" >&2
    failures=$((failures + 1)); failed+=("$t"); continue
  fi
  if ! "$bin" "${common[@]}" "${inputs[@]}" >"$log.replay" 2>&1; then
    bad=$(grep '^Running: ' "$log.replay" | tail -n 1 | sed 's/^Running: //')
    why=$(grep -m1 -E '^SUMMARY|ERROR: libFuzzer|fuzz invariant broken' "$log.replay" || true)
    echo "fuzz: $t: FAILED replaying $bad: ${why:-see $log.replay}"
    failures=$((failures + 1)); failed+=("$t"); continue
  fi

  # 2. Fuzzing: new inputs into the scratch corpus, seeds read from both.
  rc=0
  "$bin" "${common[@]}" -max_total_time="$secs" -max_len="${max_len[$t]}" \
    -print_final_stats=1 "$scratch" "$corpus" >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  execs=${execs:-0}
  total_execs=$((total_execs + execs + ${#inputs[@]}))
  if [ "$rc" -ne 0 ]; then
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    why=$(grep -m1 -E '^SUMMARY|ERROR: libFuzzer|fuzz invariant broken' "$log" || true)
    failures=$((failures + 1)); failed+=("$t")
    if [ -n "$artifact" ] && [ -f "$artifact" ]; then
      sha=$(sha1sum "$artifact" | cut -c1-40)
      keep=$corpus/crash-$sha
      cp "$artifact" "$keep"
      echo "fuzz: $t: FAILED after $execs executions: ${why:-exit status $rc}"
      echo "fuzz: $t:   input $artifact, kept as $keep (replay: $bin $keep); log $log"
    else
      echo "fuzz: $t: FAILED (exit status $rc, no input saved): ${why:-see $log}"
    fi
    continue
  fi
  echo "fuzz: $t: ${#inputs[@]} corpus inputs replayed, $execs executions in ${secs} s, ${rate:-?} exec/s"
done

echo "fuzz: ${#targets[@]} targets, $total_execs executions, $failures crashes${failed:+ (${failed[*]})}, $(( $(date +%s) - start )) s"
[ "$failures" -eq 0 ]
