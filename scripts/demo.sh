#!/usr/bin/env bash
# The main job on its embedded default: a virtual pen (penemu on a
# pseudo-terminal) holding three recorded sessions is attached to penlinkd,
# which downloads, verifies and archives every session and tells the pen it
# may reclaim them; penctl then shows what the archive holds.  Everything
# runs unprivileged in a temporary folder that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
bash scripts/build.sh build
bin=build

work=$(mktemp -d -t penlink-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# penemu prints its port on the first line of stdout, then serves until killed.
"$bin/firmware-bridge/penemu" --pty --flash "$work/pen.flash" --serial PEN-DEMO-1 \
  --sessions 3 --session-bytes 2000000 >"$work/emu.out" 2>"$work/emu.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/emu.out" ] && break; sleep 0.1; done
port=$(head -n1 "$work/emu.out")
[ -n "$port" ] || { echo "demo: penemu did not start:" >&2; cat "$work/emu.err" >&2; exit 1; }

penctl() { "$bin/cli/penctl" --socket "$work/penlinkd.sock" "$@"; }

echo "== the pen's own session list (read directly, before the daemon takes the port)"
"$bin/cli/penctl" --port "$port" sessions list
"$bin/cli/penctl" --port "$port" --json sessions list >"$work/pen.json"

echo; echo "== penlinkd serving the virtual pen on $port (log: daemon.log)"
"$bin/daemon/penlinkd" --foreground --no-usb --socket "$work/penlinkd.sock" \
  --db "$work/archive.db" --port "$port" 2>"$work/daemon.log" &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/penlinkd.sock" ] && break; sleep 0.1; done
for _ in $(seq 600); do
  state=$(penctl --json list 2>/dev/null | jq -r '.pens[0].state // empty')
  [ "$state" = idle ] && break
  sleep 0.1
done
[ "$state" = idle ] || { echo "demo: the pen never became idle:" >&2; cat "$work/daemon.log" >&2; exit 1; }
penctl list
echo; sed 's/^/  daemon: /' "$work/daemon.log" | tail -n 12

echo; echo "== the archive"
penctl sessions list

echo; echo "== verify: each archived record's SHA-256 against the digest the pen advertised"
penctl sessions pull --out "$work/out" >/dev/null
for uuid in $(jq -r '.sessions[].uuid' "$work/pen.json"); do
  want=$(jq -r ".sessions[] | select(.uuid == \"$uuid\") | .sha256" "$work/pen.json")
  got=$(sha256sum "$work"/out/*"$uuid".plrec | cut -d' ' -f1)
  if [ "$got" = "$want" ]; then echo "ok  $uuid  $got"; else echo "MISMATCH $uuid: $got != $want"; exit 1; fi
done

echo; echo "== CSV export (first columns)"
penctl sessions export --format csv | cut -d, -f1-6

echo; echo "== the treatment report, the overview of the last 60 days and a FHIR R4 Bundle"
# Kept after the demo (the work folder is removed): open them in a browser.
reports=${PENLINK_DEMO_REPORTS:-${TMPDIR:-/tmp}/penlink-demo-reports}
mkdir -p "$reports"
penctl sessions report "PEN-DEMO-1/$(jq -r '.sessions[0].uuid' "$work/pen.json")" \
  --out "$reports/session-report.html"
penctl report --since "$(date -d '-60 days' +%F)" --out "$reports/overview.html"
penctl sessions export --format fhir --out "$reports/sessions.fhir.json"
echo "sample treatment report: $reports/session-report.html"
echo "sample overview:         $reports/overview.html"

echo; echo "== the first session, decoded from the archive"
penctl sessions show "$(jq -r '.sessions[0].uuid' "$work/pen.json")" | head -n 24
echo; echo "== the pen was told it may reclaim them (daemon detaches; read the pen directly)"
penctl detach "$port" >/dev/null
"$bin/cli/penctl" --port "$port" sessions list
echo; echo "demo: done"
