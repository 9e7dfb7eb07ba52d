#!/usr/bin/env bash
# The main job on its embedded default: a virtual pen (penemu on a
# pseudo-terminal) holding three recorded sessions; penctl reads its info and
# presets, then downloads every session, verifies it, archives it on the pen,
# and shows one.  Everything lives in a temporary folder that is removed after.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
bin=build

work=$(mktemp -d -t penlink-demo.XXXXXX)
emu_pid=
cleanup() {
  [ -n "$emu_pid" ] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

# penemu prints its port on the first line of stdout, then serves until killed.
"$bin/firmware-bridge/penemu" --pty --flash "$work/pen.flash" --serial PEN-DEMO-1 \
  --sessions 3 --session-bytes 2000000 >"$work/emu.out" 2>"$work/emu.err" &
emu_pid=$!
for _ in $(seq 100); do [ -s "$work/emu.out" ] && break; sleep 0.1; done
port=$(head -n1 "$work/emu.out")
[ -n "$port" ] || { echo "demo: penemu did not start:" >&2; cat "$work/emu.err" >&2; exit 1; }

penctl() { "$bin/cli/penctl" --port "$port" "$@"; }

echo "== virtual pen on $port"
penctl info
echo; echo "== presets"
penctl preset list
echo; echo "== sessions on the pen"
penctl sessions list
penctl --json sessions list >"$work/list.json"
echo; echo "== download every session into $work/archive"
penctl sessions pull --out "$work/archive"
echo; echo "== verify: SHA-256 of each stored file against the digest the pen advertised"
for uuid in $(jq -r '.sessions[].uuid' "$work/list.json"); do
  want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$work/list.json")
  got=$(sha256sum "$work"/archive/*"$uuid".plrec | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then echo "ok  $uuid  $got"; else echo "MISMATCH $uuid: $got != $want"; exit 1; fi
done
echo; echo "== a second pull finds nothing new"
penctl sessions pull --out "$work/archive"
echo; echo "== the first record, decoded"
first=$(ls "$work/archive"/*.plrec | head -n1)
"$bin/cli/penctl" sessions show "$first" | head -n 40
echo; echo "demo: done"
