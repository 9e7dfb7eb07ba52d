#!/usr/bin/env bash
# Presets: push from a file and from flags, read back, persistence in the
# pen's flash, and every refusal - by penctl, and by the pen on its own.
. "$(dirname "$0")/lib.sh"

start_emu pen --serial PEN-IT-PRE --flash "$T/pen.flash" --sessions 0
P=(--port "$EMU_PORT")

expect 0 "${P[@]}" --json preset list
rev0=$(jqo .revision)

cat >"$T/set.json" <<'J'
{"presets": [
  {"id": 1, "name": "Forehead fine", "depth_mm": 0.5, "speed": 3, "area": "forehead", "needles": 12, "max_duration_s": 600},
  {"id": 2, "name": "Décolleté", "depth_mm": "0.75", "speed": 4, "area": "decollete", "needles": 36},
  {"id": 5, "name": "Scalp", "depth_mm": 1.25, "speed": 6, "area": "scalp", "needles": 0}
]}
J
# The file leaves out preset 3 of the pen's set: removing it needs --replace.
expect 4 "${P[@]}" preset push "$T/set.json"
assert_contains "$ERR" "--replace" "a file that removes presets needs --replace"
expect 0 "${P[@]}" --json preset push "$T/set.json" --replace
assert_eq "$(jqo .previous_revision)" "$rev0" "push reports the revision it replaced"
assert_eq "$(jqo .revision)" "$((rev0 + 1))" "revision advances by one"

expect 0 "${P[@]}" --json preset list
assert_eq "$(jqo '.presets | length')" "3" "three presets read back"
assert_eq "$(jqo '.presets[1].name')" "Décolleté" "UTF-8 name intact"
assert_eq "$(jqo '.presets[1].depth_mm')" "0.75" "depth in mm exact"
assert_eq "$(jqo '.presets[2].needles')" "0" "nano cartridge"
assert_eq "$(jqo '.presets[0].area')" "forehead" "area by name"
assert_eq "$(jqo '.presets[2].speed')" "6" "speed level"

# One preset by flags: others are kept.
expect 0 "${P[@]}" --json preset push --id 2 --name "Cheek" --depth 1.0 --speed 2 --area cheek
assert_eq "$(jqo '.presets | length')" "3" "flag push keeps the other presets"
assert_eq "$(jqo '.presets[] | select(.id == 2) | .name')" "Cheek" "flag push replaced preset 2"
assert_eq "$(jqo '.presets[] | select(.id == 2) | .depth_mm')" "1" "flag push depth"

# Without --area (flags) or "area" (file) a preset's area is "other", which
# the pen accepts; it refuses an unset area on its own.
expect 0 "${P[@]}" --json preset push --id 4 --name "No area" --depth 0.5 --speed 2
assert_eq "$(jqo '.presets[] | select(.id == 4) | .area')" "other" "a preset without an area is 'other'"

# Persistence: restart the pen on the same flash.
stop_emu "$EMU_PID"
start_emu pen2 --flash "$T/pen.flash"
P=(--port "$EMU_PORT")
expect 0 "${P[@]}" --json preset list
assert_eq "$(jqo '.presets[] | select(.id == 5) | .name')" "Scalp" "presets survive a pen restart"

# Refusals by penctl/the library: exit 4, message names value and limit.
refuse() { # name expected-substring args...
  local what=$1 needle=$2; shift 2
  expect 4 "${P[@]}" preset push "$@"
  assert_contains "$ERR" "$needle" "refused: $what"
}
refuse "depth above max" "2.75" --id 3 --name Deep --depth 2.75 --speed 1 --confirm
refuse "depth below min" "0.00" --id 3 --name Shallow --depth 0 --speed 1
refuse "depth off step" "step" --id 3 --name Odd --depth 0.3 --speed 1
refuse "speed above levels" "level 7" --id 3 --name Fast --depth 0.5 --speed 7
refuse "slow lock" "level 1" --id 3 --name Lock --depth 2.0 --speed 3 --confirm
refuse "name too long" "32" --id 3 --name "$(printf 'x%.0s' {1..33})" --depth 0.5 --speed 1
refuse "deep without confirm" "--confirm" --id 3 --name Scar --depth 1.75 --speed 1

expect 2 "${P[@]}" preset push --id 3 --name Area --depth 0.5 --speed 1 --area elbow
assert_contains "$ERR" "elbow" "unknown area named"

expect 0 "${P[@]}" --json preset push --id 3 --name Scar --depth 2.0 --speed 1 --area body-scar --confirm
assert_eq "$(jqo '.presets[] | select(.id == 3) | .depth_mm')" "2" "deep preset accepted with --confirm"

# Malformed files say where.
printf '{"presets": [\n  {"id": 1, "name": "A", "depth_mm": 0.5, "speed": 1,\n' >"$T/broken.json"
expect 4 "${P[@]}" preset push "$T/broken.json"
assert_contains "$ERR" "line" "truncated JSON names the line"
echo '{"presets": [{"id": 1, "name": "A", "depht_mm": 0.5, "speed": 1}]}' >"$T/typo.json"
expect 4 "${P[@]}" preset push "$T/typo.json"
assert_contains "$ERR" "depht_mm" "unknown key named"
echo '{"presets": [{"id": 1, "name": "A", "depth_mm": "deep", "speed": 1}]}' >"$T/type.json"
expect 4 "${P[@]}" preset push "$T/type.json"
assert_contains "$ERR" "presets[0].depth_mm" "bad value names its path"
expect 3 "${P[@]}" preset push "$T/missing.json"

# The pen refuses on its own when the host checks are bypassed.
expect 0 "${P[@]}" --json preset list
before=$(jqo .revision)
# (push_unchecked: a test program on the library's test-only hook; penctl
# has no way around the host checks.)
: "${PUSH_UNCHECKED:?PUSH_UNCHECKED must point at the push_unchecked test program}"
unchecked() { # exit-status args...
  local want=$1; shift
  ERR=$("${WRAP[@]}" "$PUSH_UNCHECKED" "$EMU_PORT" "$@" 2>&1)
  RC=$?
  OUT=""
  [ "$RC" -eq "$want" ] || fail "push_unchecked $* exited $RC, expected $want"
}
unchecked 4 3 Deep 2750 1
assert_contains "$ERR" "depth_um" "the pen names the field it refused"
assert_contains "$ERR" "2750" "the pen names the value it refused"
unchecked 4 3 Lock 2250 4
assert_contains "$ERR" "speed" "the pen enforces the slow lock itself"
expect 2 "${P[@]}" preset push --no-host-check --id 3 --name Deep --depth 2.75 --speed 1
assert_contains "$ERR" "--no-host-check" "penctl has no way around the host checks"
expect 0 "${P[@]}" --json preset list
assert_eq "$(jqo .revision)" "$before" "refused writes leave the revision alone"
assert_eq "$(jqo '.presets[] | select(.id == 3) | .depth_mm')" "2" "refused writes leave the presets alone"

done_testing
