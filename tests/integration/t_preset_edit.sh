#!/usr/bin/env bash
# Issue 11: preset editing changes only what was asked, shows what it
# changes, and never removes a preset silently - directly (--port) and
# through penlinkd alike.
#  - `preset push --id N` with some fields changes those fields and keeps
#    the others (area, needles, time limit included); a new id needs
#    --name, --depth and --speed;
#  - every push prints the diff (old -> new per field, presets added and
#    removed; in --json a "diff" array); --dry-run prints it and writes
#    nothing;
#  - a push that removes presets or empties the set needs --replace (exit 4
#    naming the presets it would remove and the flag);
#  - `preset delete --id N` removes one preset, audited like a push.
# penemu's presets when its flash is new:
#   1 "Forehead fine"  0.50 mm speed 4 forehead  12 needles  600 s
#   2 "Cheek standard" 1.00 mm speed 3 cheek     24 needles  900 s
#   3 "Scar deep"      2.00 mm speed 1 body-scar 36 needles 1200 s
. "$(dirname "$0")/lib.sh"

start_emu direct --serial PEN-ED-1 --sessions 0
DIRECT_PORT=$EMU_PORT
start_emu viad --serial PEN-ED-2 --sessions 0
start_daemon --port "$EMU_PORT"
wait_idle 1

# ids:names of the pen's set and its revision, as `preset list` reads them.
list_set() {
  expect 0 "$@" --json preset list
  REV=$(jqo .revision)
  SET=$(jqo '[.presets[] | "\(.id):\(.name)"] | join(",")')
}

# The lines of stdout before the first line that starts with "id" (the
# table of the set as read back).
diff_text() { sed -n '/^ *id  /q;p' <<<"$OUT"; }

scenario() { # mode serial penctl-args...
  local m=$1 s=$2; shift 2
  local A=("$@") rev

  list_set "${A[@]}"
  assert_eq "$SET" "1:Forehead fine,2:Cheek standard,3:Scar deep" "$m: penemu's three presets"
  rev=$REV

  # --- only what was asked, and the diff in text
  expect 0 "${A[@]}" preset push --id 1 --name "Forehead finer" --depth 0.75 --speed 4
  assert_eq "$(diff_text)" "$s, revision $rev: 1 changed
  ~ preset 1 \"Forehead finer\": name \"Forehead fine\" -> \"Forehead finer\"
  ~ preset 1 \"Forehead finer\": depth 0.50 mm -> 0.75 mm
$s: pushed 3 presets, verified; revision $rev -> $((rev + 1))" \
    "$m: the push prints the fields it changes, old -> new, and no others"
  expect 0 "${A[@]}" --json preset list
  assert_eq "$(jqo '.presets[] | select(.id == 1) | "\(.name)|\(.depth_mm)|\(.speed)|\(.area)|\(.needles)|\(.max_duration_s)"')" \
    "Forehead finer|0.75|4|forehead|12|600" "$m: area, needles and time limit kept"
  assert_eq "$(jqo '.presets | length')" "3" "$m: the other presets kept"

  # --- the diff in JSON; fields not given are kept (no --name, --depth, --speed)
  expect 0 "${A[@]}" --json preset push --id 2 --area neck --needles 0
  assert_eq "$(jq -c .diff <<<"$OUT")" \
    '[{"id":2,"change":"changed","name":"Cheek standard","fields":{"area":{"old":"cheek","new":"neck"},"needles":{"old":24,"new":0}}}]' \
    "$m: --json push carries the diff"
  assert_eq "$(jqo .dry_run)" "false" "$m: a real push says it is not a dry run"
  assert_eq "$(jqo '.presets[] | select(.id == 2) | "\(.name)|\(.depth_mm)|\(.speed)|\(.area)|\(.needles)|\(.max_duration_s)"')" \
    "Cheek standard|1|3|neck|0|900" "$m: only area and needles changed"

  # --- a new id needs name, depth and speed
  list_set "${A[@]}"
  rev=$REV
  expect 2 "${A[@]}" preset push --id 7 --depth 0.5
  assert_contains "$ERR" "no preset 7" "$m: a new id is recognised as new"
  assert_contains "$ERR" "--name" "$m: the missing --name is named"
  assert_contains "$ERR" "--speed" "$m: the missing --speed is named"
  list_set "${A[@]}"
  assert_eq "$REV" "$rev" "$m: an incomplete new preset writes nothing"

  # --- --dry-run: the diff, nothing written
  expect 0 "${A[@]}" --json preset push --id 7 --name Neck --depth 0.5 --speed 2 \
    --area neck --needles 12 --max-duration 600 --dry-run
  assert_eq "$(jq -c .diff <<<"$OUT")" \
    '[{"id":7,"change":"added","name":"Neck","new":{"id":7,"name":"Neck","depth_mm":0.5,"speed":2,"area":"neck","needles":12,"max_duration_s":600}}]' \
    "$m: --dry-run --json shows the preset it would add"
  assert_eq "$(jqo .dry_run)" "true" "$m: --json says it was a dry run"
  assert_eq "$(jqo .revision)" "$rev" "$m: a dry run reports the revision it compared with"
  expect 0 "${A[@]}" preset push --id 7 --name Neck --depth 0.5 --speed 2 \
    --area neck --needles 12 --max-duration 600 --dry-run
  assert_eq "$OUT" "$s, revision $rev: 1 added
  + preset 7 \"Neck\": depth 0.50 mm, speed 2, neck, 12 needles, 600 s
$s: dry run: nothing written" "$m: --dry-run prints the diff and stops"
  list_set "${A[@]}"
  assert_eq "$REV|$SET" "$rev|1:Forehead finer,2:Cheek standard,3:Scar deep" "$m: --dry-run wrote nothing"

  # --- removing presets needs --replace
  cat >"$T/two.json" <<'J'
{"presets": [
  {"id": 1, "name": "Forehead finer", "depth_mm": 0.75, "speed": 4, "area": "forehead", "needles": 12, "max_duration_s": 600},
  {"id": 2, "name": "Cheek standard", "depth_mm": 1.0, "speed": 3, "area": "neck", "needles": 0, "max_duration_s": 900}
]}
J
  expect 4 "${A[@]}" preset push "$T/two.json"
  assert_contains "$ERR" 'preset 3 "Scar deep"' "$m: the refusal names the preset it would remove"
  assert_contains "$ERR" "--replace" "$m: the refusal names --replace"
  expect 4 "${A[@]}" --json preset push "$T/two.json"
  assert_eq "$(jqo .error.code)" "policy" "$m: the refusal's JSON code"
  list_set "${A[@]}"
  assert_eq "$REV|$SET" "$rev|1:Forehead finer,2:Cheek standard,3:Scar deep" "$m: a refused removal writes nothing"
  expect 0 "${A[@]}" preset push "$T/two.json" --replace
  assert_eq "$(diff_text)" "$s, revision $rev: 1 removed
  - preset 3 \"Scar deep\": depth 2.00 mm, speed 1, body-scar, 36 needles, 1200 s
$s: pushed 2 presets, verified; revision $rev -> $((rev + 1))" "$m: --replace removes, and says what"
  list_set "${A[@]}"
  assert_eq "$SET" "1:Forehead finer,2:Cheek standard" "$m: the set as pushed"
  rev=$REV

  # --- an empty file empties the set only with --replace
  echo '{"presets": []}' >"$T/empty.json"
  expect 4 "${A[@]}" preset push "$T/empty.json"
  assert_contains "$ERR" "every preset" "$m: emptying the set is called what it is"
  assert_contains "$ERR" 'preset 1 "Forehead finer"' "$m: ... naming the presets"
  assert_contains "$ERR" "--replace" "$m: ... and the flag"
  expect 0 "${A[@]}" --json preset push "$T/empty.json" --replace --dry-run
  assert_eq "$(jq -c '[.diff[] | "\(.change):\(.id):\(.old.name)"]' <<<"$OUT")" \
    '["removed:1:Forehead finer","removed:2:Cheek standard"]' "$m: the dry run lists both removals"
  list_set "${A[@]}"
  assert_eq "$REV|$SET" "$rev|1:Forehead finer,2:Cheek standard" "$m: nothing emptied"

  # --- delete
  expect 3 "${A[@]}" preset delete --id 9
  assert_contains "$ERR" "no preset 9" "$m: deleting a missing preset is not found"
  expect 0 "${A[@]}" preset delete --id 2
  assert_eq "$(diff_text)" "$s, revision $rev: 1 removed
  - preset 2 \"Cheek standard\": depth 1.00 mm, speed 3, neck, nano, 900 s
$s: pushed 1 preset, verified; revision $rev -> $((rev + 1))" "$m: delete shows what it removes"
  list_set "${A[@]}"
  assert_eq "$SET" "1:Forehead finer" "$m: preset 2 deleted, preset 1 kept"
}

scenario direct PEN-ED-1 --port "$DIRECT_PORT"
scenario daemon PEN-ED-2 "${D[@]}"

# The daemon's audit trail has the delete with the set before and after
# (old_value/new_value: preset-file JSON, as text or as an object).
expect 0 "${D[@]}" --json audit --limit 1
assert_eq "$(jqo '.entries[0].action')" "presets.push" "the delete is audited as a push"
assert_eq "$(jqo '.entries[0].result')" "ok" "... that succeeded"
assert_eq "$(jqo '.entries[0].old_value | if type == "string" then fromjson else . end | [.presets[].id] | map(tostring) | join(",")')" \
  "1,2" "the audit entry holds the set before the delete"
assert_eq "$(jqo '.entries[0].new_value | if type == "string" then fromjson else . end | [.presets[].id] | map(tostring) | join(",")')" \
  "1" "the audit entry holds the set after the delete"
# A removal refused for want of --replace is audited as a refusal.
expect 0 "${D[@]}" --json audit
assert_eq "$(jqo '[.entries[] | select(.action == "refused:presets.push" and (.result | contains("--replace")))] | length')" \
  "3" "refusals for want of --replace are audited (the file twice, the empty set)"
# Dry runs write nothing and are not in the trail as pushes.
assert_eq "$(jqo '[.entries[] | select(.action == "presets.push" and .result == "ok")] | length')" \
  "4" "four pushes audited: two edits, one --replace, one delete"
done_testing
