#!/usr/bin/env bash
# A pen unplugged mid-download (penemu exits after N bytes): penctl says so
# and keeps the partial file; the next pull resumes from where it stopped -
# not from zero - and the stored record's digest matches.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-IT-RES --flash "$T/pen.flash" --sessions 1 --session-bytes 3000000 \
  --seed 5 --fault-disconnect-after 1200000
P=(--port "$EMU_PORT")
expect 0 "${P[@]}" --json sessions list
want=$(jqo '.sessions[0].sha256'); size=$(jqo '.sessions[0].size')

expect 6 "${P[@]}" sessions pull --out "$T/arch"
assert_contains "$ERR" "again" "unplug message says to pull again"
wait "$EMU_PID"; [ $? -eq 3 ] && ok "penemu simulated the unplug"
part=$(ls -A "$T/arch" | grep '\.part$' || true)
[ -n "$part" ] || fail "no partial file kept"
have=$(stat -c %s "$T/arch/$part")
[ "$have" -gt 0 ] && [ "$have" -lt "$size" ] && ok "partial file holds $have of $size bytes"
ls "$T/arch"/*.plrec >/dev/null 2>&1 && fail "an incomplete record was given its final name"

# Replug (same flash, no fault).  The first chunk requested must start at the
# partial file's length.
start_emu pen2 --flash "$T/pen.flash"
expect 0 --port "$EMU_PORT" --dump-frames --json sessions pull --out "$T/arch"
first=$(grep -o 'read_session{[^}]*}' <<<"$ERR" | head -n1)
assert_contains "$first" "offset:$have" "resumed at byte $have, not 0"
f=$(jqo '.pulled[0].path')
assert_eq "$(sha256sum "$f" | cut -d' ' -f1)" "$want" "resumed record's digest matches the pen's"
assert_eq "$(jqo '.archived | length')" "1" "archived after verification"
[ -z "$(ls -A "$T/arch" | grep '\.part$')" ] && ok "partial file consumed"
done_testing
