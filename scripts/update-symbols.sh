#!/usr/bin/env bash
# Writes debian/libpenlink0.symbols from lib/penlink.map, the one list of
# what libpenlink.so exports.  Run it after adding a function to the map;
# tests/package/t_debian.sh fails while the two disagree.  A symbol keeps
# the version that first shipped it (kept from the old file); a new one gets
# the version in debian/changelog.
set -euo pipefail
cd "$(dirname "$0")/.."
out=debian/libpenlink0.symbols
ver=$(sed -n '1s/.*(\([^)+]*\).*/\1/p' debian/changelog)
declare -A since=()
if [ -f "$out" ]; then
  while read -r sym v; do since[$sym]=$v; done < <(sed -n 's/^ \([^ ]*\) \(.*\)$/\1 \2/p' "$out")
fi
{
  echo "libpenlink.so.0 libpenlink0 #MINVER#"
  echo " PENLINK_0@PENLINK_0 ${since[PENLINK_0@PENLINK_0]:-$ver}"
  sed -n 's/^[[:space:]]*\(pl_[a-z0-9_]*\);.*/\1/p' lib/penlink.map | sort | while read -r f; do
    echo " $f@PENLINK_0 ${since[$f@PENLINK_0]:-$ver}"
  done
} >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out: $(($(wc -l <"$out") - 2)) functions"
