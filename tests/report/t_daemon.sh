#!/usr/bin/env bash
# Through penlinkd: sessions report SERIAL/UUID (and a bare UUID) reads the
# archived record the way sessions show does, with the pen's model and
# hardware while it is attached, the archive's digest checked and the
# origin named; report --since draws the period from the archive's export;
# sessions export --format fhir gives a Bundle the validator accepts,
# identical when exported again.  Annotations (sessions annotate, where
# this penlinkd has them) show as operator and client reference, filter
# report --client, and become the FHIR Procedure's subject and performer.
. "$(dirname "$0")/lib.sh"
need_chromium

start_emu a --serial PEN-D001 --sessions 2 --session-bytes 250000 --seed 5
PA=$EMU_PORT
start_emu b --serial 'PEN<i>D2</i>' --raw-text --sessions 1 --session-bytes 200000 --seed 6
PB=$EMU_PORT
start_daemon --port "$PA" --port "$PB"
wait_idle 2
expect 0 "${D[@]}" --json sessions list
assert_eq "$(jqo '.sessions | length')" 3 "three sessions archived"
s1=$(jqo '.sessions[] | select(.serial == "PEN-D001") | .uuid' | head -1)
sha1=$(jqo ".sessions[] | select(.uuid == \"$s1\") | .sha256")
s3=$(jqo '.sessions[] | select(.serial != "PEN-D001") | .uuid')

expect 0 "${D[@]}" sessions report "PEN-D001/$s1" --out "$T/r1.html"
ok "sessions report PEN-D001/$s1 through penlinkd"
to_pdf "$T/r1.html" "$T/r1.pdf" || fail "no PDF"
pdftotext "$T/r1.pdf" - | tr -s ' \n' ' ' >"$T/r1.txt"
for want in PEN-D001 "$s1" "$sha1" "PL-Pen 1" "penlinkd archive" "matches the digest the source lists"; do
  grep -qF -- "$want" "$T/r1.txt" || fail "'$want' not in the report: $(cat "$T/r1.txt")"
done
ok "the report: serial, UUID, digest (matching the archive's), model from the attached pen, origin"
n=$(pages "$T/r1.pdf")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "$n pages"
ok "$n page(s)"
expect 0 "${D[@]}" sessions report "$s3" --out "$T/r3.html"
dump_dom "$T/r3.html" "$T/r3.dom" || fail "no DOM"
$PY "$HERE/check.py" dom "$T/r3.dom" 3 'PEN<i>D2</i>' || fail "hostile serial"
ok "a bare UUID names the session; a pen's markup serial renders as text"
expect 3 "${D[@]}" sessions report "PEN-D001/00000000-0000-4000-8000-000000000000" --out "$T/x.html"
[ ! -e "$T/x.html" ] || fail "a report was written for a missing session"
ok "a missing session exits 3 and writes nothing"
expect 2 --port "$PA" report --since 2020-01-01 --out "$T/x.html"
ok "report with --port and no FILE is a usage error"

annotated=0
if "$PENCTL" sessions annotate --help >/dev/null 2>&1; then
  expect 0 "${D[@]}" sessions annotate "PEN-D001/$s1" --client C-4711 --operator "Dr. Ann" --note "forehead, 2 passes"
  annotated=1
  expect 0 "${D[@]}" sessions report "PEN-D001/$s1" --out "$T/r1a.html"
  dump_dom "$T/r1a.html" "$T/r1a.dom" || fail "no DOM"
  $PY "$HERE/check.py" dom "$T/r1a.dom" 3 C-4711 "Dr. Ann" "forehead, 2 passes" ||
    fail "annotations not in the report"
  ok "annotations: client reference, operator and note in the report"
else
  echo "# this penlinkd has no sessions annotate: annotation checks skipped"
fi

expect 0 "${D[@]}" report --since 2000-01-01 --out "$T/o.html"
assert_contains "$OUT" "wrote the overview" "report --since writes the overview"
to_pdf "$T/o.html" "$T/o.pdf" || fail "no PDF"
pdftotext "$T/o.pdf" - | tr -s ' \n' ' ' >"$T/o.txt"
for want in "Sessions per year" "Sessions per pen" "Depth used per area" PEN-D001 "PEN<i>D2</i>"; do
  grep -qF -- "$want" "$T/o.txt" || fail "'$want' not in the overview"
done
ok "overview: per day, per pen, depth per area, both pens"
dump_dom "$T/o.html" "$T/o.dom" || fail "no DOM"
$PY "$HERE/check.py" dom "$T/o.dom" 3 || fail "overview DOM"
to_png "$T/o.html" "$T/o.png" 1000,2000 || fail "no screenshot"
ok "overview: three plots, no injected markup"
expect 0 "${D[@]}" report --since "$(date -d '-60 days' +%F)" --out "$T/od.html"
grep -q "Sessions per day" "$T/od.html" || fail "a 60-day period is not drawn per day"
ok "a 60-day period: sessions per day"
expect 0 "${D[@]}" -s PEN-D001 --json report --since 2000-01-01 --out "$T/o1.html"
assert_eq "$(jqo .sessions)" 2 "report -s PEN-D001 counts that pen's two sessions"
expect 0 "${D[@]}" --json report --since 2000-01-01 --until 2000-01-02 --out "$T/o0.html"
assert_eq "$(jqo .sessions)" 0 "an empty period"
if [ "$annotated" = 1 ]; then
  expect 0 "${D[@]}" --json report --since 2000-01-01 --client C-4711 --out "$T/oc.html"
  assert_eq "$(jqo .sessions)" 1 "report --client C-4711: the annotated session only"
fi

need_validator
expect 0 "${D[@]}" sessions export --format fhir --out "$T/b.json"
fhir_check "$T/b.json" 3 || fail "validation"
ok "FHIR Bundle of the archive: valid, 3 sessions"
jq -e '.entry[] | select(.resource.resourceType == "Device" and .resource.serialNumber == "PEN-D001")
       | .resource.modelNumber == "PL-Pen 1"' "$T/b.json" >/dev/null || fail "Device model"
ok "the Device carries the attached pen's model"
if [ "$annotated" = 1 ]; then
  jq -e --arg v "PEN-D001/$s1" '.entry[].resource | select(.resourceType == "Procedure" and .identifier[0].value == $v)
         | .subject.identifier.value == "C-4711" and .performer[0].actor.display == "Dr. Ann"
           and ([.note[].text] | index("forehead, 2 passes")) != null' "$T/b.json" >/dev/null ||
    fail "annotations in FHIR"
  ok "FHIR: subject from the client reference, performer from the operator, the note"
fi
expect 0 "${D[@]}" sessions export --format fhir --out "$T/b2.json"
cmp -s "$T/b.json" "$T/b2.json" || fail "second export differs"
ok "exported again: identical"
expect 0 "${D[@]}" -s PEN-D001 sessions export --format fhir --since 2000-01-01
printf '%s\n' "$OUT" >"$T/b3.json"
fhir_check "$T/b3.json" 2 || fail "-s PEN-D001 --since"
ok "-s PEN-D001 --since: that pen's 2 sessions on stdout"
done_testing
