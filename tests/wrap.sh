#!/usr/bin/env bash
# Runs a test program under $PL_TEST_WRAPPER (e.g. valgrind) when it is set,
# so one ctest run can put the whole suite under a memory checker.
read -r -a wrap <<<"${PL_TEST_WRAPPER:-}"
exec "${wrap[@]}" "$@"
