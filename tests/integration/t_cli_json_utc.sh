#!/usr/bin/env bash
# The one time rule in JSON: next to every *_ms time a person may read, a
# *utc key with the same instant as ISO 8601 UTC (clock sync, audit,
# monitor and trace lines), so scripts need not convert milliseconds.
. "$(dirname "$0")/lib.sh"

# check_pair JSON MS_PATH UTC_PATH: the two keys name the same instant.
check_pair() {
  python3 - "$1" "$2" "$3" <<'PY' || fail "$2 and $3 disagree in: $1"
import json, sys, datetime
doc = json.loads(sys.argv[1])
def get(o, path):
    for k in path.split("."):
        o = o[int(k)] if isinstance(o, list) else o[k]
    return o
ms, utc = get(doc, sys.argv[2]), get(doc, sys.argv[3])
want = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)
assert utc == want, (utc, want)
PY
}

start_emu pen --serial PEN-UTC-1 --sessions 1
start_daemon
"${WRAP[@]}" "$PENCTL" "${D[@]}" --json monitor >"$T/monitor.jsonl" 2>/dev/null &
MON=$!
EMU_PIDS+=("$MON")
sleep 0.5
expect 0 "${D[@]}" attach "$EMU_PORT"
wait_idle 1
expect 0 "${D[@]}" --json clock sync
check_pair "$OUT" host_utc_ms host_utc
ok "clock sync: host_utc is host_utc_ms in ISO 8601"
expect 0 "${D[@]}" --json audit
check_pair "$OUT" entries.0.utc_ms entries.0.utc
ok "audit: every entry's utc is its utc_ms in ISO 8601"
kill "$MON"; wait "$MON" 2>/dev/null
n=0
while IFS= read -r line; do
  check_pair "$line" utc_ms utc
  n=$((n + 1))
done <"$T/monitor.jsonl"
[ "$n" -ge 2 ] || fail "monitor printed $n lines"
ok "monitor: each of $n event lines has utc next to utc_ms"
done_testing
