#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test tier this machine
# supports:
#   1. unit + integration tests (ctest);
#   2. real USB: a QEMU VM with dummy_hcd gadget pens (tests/usb-vm, ctest
#      label usbvm; skipped with the reason where QEMU cannot run), alone on
#      the machine because its benchmark measures throughput;
#   3. the unit, integration and central suites built with
#      AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. the same suites under valgrind memcheck (leaks are errors);
#   5. libFuzzer (clang): every fuzz target replays its corpus, then fuzzes
#      for a bounded time (scripts/fuzz.sh);
#   6. the benchmarks, which print their figures (ratios against targets),
#      including the USB download benchmark the VM ran in tier 2;
#   7. the Debian packages (tests/package, label package): built, linted,
#      installed, upgraded, removed and purged on this machine with apt and
#      dpkg, alone and last because it installs into the system.
# Tier 1 includes the bounded randomized fault campaign (tests/faults).
# The central tier (tests/central, label central) runs after tier 2: a real
# PostgreSQL 15 per test, fed by penlinkd sites (about 2 minutes).
# Exits non-zero if any tier fails.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || exit 1

passed=0
failed=0
tier() {
  local name=$1; shift
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: passed"
  else
    failed=$((failed + 1)); echo "=== $name: FAILED"
  fi
}

bash scripts/build.sh build || exit 1
tier "unit and integration tests" ctest --test-dir build --output-on-failure -j2 -LE "usbvm|package|central"
tier "real USB in a VM" ctest --test-dir build --output-on-failure -L usbvm
tier "central PostgreSQL archive" ctest --test-dir build --output-on-failure -L central

bash scripts/build.sh build-asan -DPENLINK_SANITIZE=ON || exit 1
tier "ASan + UBSan" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j2 -LE "usbvm|package"

tier "valgrind memcheck" env \
  PL_TEST_WRAPPER="valgrind -q --suppressions=$PWD/tests/valgrind.supp --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-fds=no" \
  ctest --test-dir build --output-on-failure -j2 -LE "usbvm|package"

tier "fuzzing (libFuzzer, 20 s a target)" bash scripts/fuzz.sh 20

tier "benchmarks" bash tests/bench/run.sh build

tier "Debian packages" ctest --test-dir build --output-on-failure -L package

echo "test tiers: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
