#!/usr/bin/env bash
# Configures and builds into build/ (or $1, with extra CMake arguments after
# it).  Quiet unless something fails; the full log is kept in DIR/build.log.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
mkdir -p "$dir"
echo "penlink: building in $dir/" >&2
if ! { cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" &&
       cmake --build "$dir" -j"$(nproc)"; } >"$dir/build.log" 2>&1; then
  tail -n 40 "$dir/build.log" >&2
  echo "penlink: build failed; full log in $dir/build.log" >&2
  exit 1
fi
