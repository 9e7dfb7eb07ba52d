#!/usr/bin/env bash
# A session is (pen serial, UUID): two pens may record sessions with equal
# UUIDs (cloned firmware: PEN-B derives its UUIDs as if it were PEN-A, with
# penemu --uuid-serial), and penctl pulls and shows each pen's own record.
. "$(dirname "$0")/lib.sh"

start_emu a --serial PEN-A --sessions 2 --session-bytes 40000
PA=$EMU_PORT
start_emu b --serial PEN-B --uuid-serial PEN-A --sessions 2 --session-bytes 40000
PB=$EMU_PORT
expect 0 --port "$PA" --json sessions list; echo "$OUT" >"$T/a.json"
expect 0 --port "$PB" --json sessions list; echo "$OUT" >"$T/b.json"
uuid=$(jq -r '.sessions[0].uuid' "$T/a.json")
assert_eq "$(jq -r '.sessions[0].uuid' "$T/b.json")" "$uuid" "the pens' first sessions share a UUID"
sha_a=$(jq -r '.sessions[0].sha256' "$T/a.json")
sha_b=$(jq -r '.sessions[0].sha256' "$T/b.json")
[ "$sha_a" != "$sha_b" ] || fail "the two records are identical; the test needs them to differ"

start_daemon --port "$PA" --port "$PB"
wait_idle 2

expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" "4" "the archive keeps both pens' sessions"

expect 0 "${D[@]}" --json sessions pull --out "$T/out"
assert_eq "$(jqo '.pulled | length')" "4" "pull copies every session of both pens"
for f in a b; do
  serial=$(jq -r .serial "$T/$f.json")
  for i in 0 1; do
    u=$(jq -r ".sessions[$i].uuid" "$T/$f.json")
    want=$(jq -r ".sessions[$i].sha256" "$T/$f.json")
    file=$(ls "$T"/out/"$serial"-*-"$u".plrec) || fail "no file for $serial/$u"
    assert_eq "$(sha256sum "$file" | cut -d' ' -f1)" "$want" "$serial/$u intact"
  done
done

expect 0 "${D[@]}" -s PEN-B --json sessions show "$uuid"
assert_eq "$(jqo .serial)" "PEN-B" "-s PEN-B sessions show UUID shows PEN-B's record"
expect 0 "${D[@]}" -s PEN-B sessions show "$uuid"
assert_contains "$OUT" "PEN-B" "the table shows PEN-B"
expect 0 "${D[@]}" --json sessions show "PEN-A/$uuid"
assert_eq "$(jqo .serial)" "PEN-A" "sessions show PEN-A/UUID shows PEN-A's record"
expect 0 "${D[@]}" --json sessions show "PEN-B/$uuid"
assert_eq "$(jqo .serial)" "PEN-B" "sessions show PEN-B/UUID shows PEN-B's record"

# A bare UUID two pens share names no session.
expect 2 "${D[@]}" sessions show "$uuid"
assert_contains "$ERR" "ambiguous" "a shared UUID alone is ambiguous"
assert_contains "$ERR" "PEN-A/$uuid" "the error shows how to name it"
# One only PEN-A has (its sessions differ past the first? use the list).
only=$(jq -r --slurpfile b "$T/b.json" '[.sessions[].uuid] - [$b[0].sessions[].uuid] | .[0] // empty' "$T/a.json")
if [ -n "$only" ]; then
  expect 0 "${D[@]}" --json sessions show "$only"
  assert_eq "$(jqo .serial)" "PEN-A" "a UUID one pen has needs no serial"
fi
expect 3 "${D[@]}" sessions show "PEN-C/$uuid"
ok "an unknown serial/UUID is not found"

done_testing
