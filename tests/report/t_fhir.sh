#!/usr/bin/env bash
# sessions export --format fhir from .plrec files: one transaction Bundle
# (or one per session with --dir) that an independent validator accepts,
# every resource a conditional create on an identifier derived from the
# pen's serial and the session's UUID, byte-identical when exported again
# (so re-sending creates nothing new), a session without a clock has no
# performed period, UCUM units.
. "$(dirname "$0")/lib.sh"
need_validator

start_emu pen --sessions 2 --session-bytes 150000 --serial PEN-F001
expect 0 --port "$EMU_PORT" sessions pull --out "$T/recs" --keep
"$REPORT_GEN" --out "$T/recs/up.plrec" --minutes 3 --interval-ms 100 --uptime --serial 'PEN|F,2$\x' >/dev/null
expect 0 sessions export --format fhir --out "$T/all.json" "$T"/recs/*.plrec
assert_contains "$OUT" "wrote a FHIR Bundle" "export --format fhir --out"
fhir_check "$T/all.json" 3 || fail "validation"
ok "3 sessions of 2 pens: one valid transaction Bundle"
jq -e '[.entry[].resource | select(.resourceType == "Device")] | length == 2' "$T/all.json" >/dev/null ||
  fail "one Device per pen"
ok "one Device per pen"
jq -e '.entry[] | select(.resource.resourceType == "Procedure" and
        (.resource.identifier[0].value | startswith("PEN|F,2$")))
       | (.resource.performedPeriod == null) and
         (.request.ifNoneExist | startswith("identifier=urn:penlink:session|PEN%5C%7CF%5C%2C2%5C%24%5C%5Cx%2F"))' \
  "$T/all.json" >/dev/null || fail "uptime session / escaped ifNoneExist"
ok "a session without a clock has no performedPeriod; | , \$ \\ in a serial are escaped in ifNoneExist"
u1=$(basename "$(ls "$T"/recs/PEN-F001-000001-*.plrec)" .plrec | sed 's/^PEN-F001-000001-//')
jq -e --arg v "PEN-F001/$u1" '.entry[] | select(.resource.resourceType == "Procedure"
        and .resource.identifier[0].value == $v)
       | .request.ifNoneExist == ("identifier=urn:penlink:session|PEN-F001%2F" + ($v | split("/")[1]))
         and .resource.status == "completed" and (.resource.performedPeriod.start | test("Z$"))
         and (.resource.bodySite | length) >= 1 and (.resource.focalDevice | length) == 1' \
  "$T/all.json" >/dev/null || fail "Procedure of PEN-F001/$u1"
ok "Procedure PEN-F001/$u1: identifier, ifNoneExist, period, body sites, focal device"
jq -e --arg v "PEN-F001/$u1/max-depth" '.entry[] | select(.resource.identifier[0].value == $v)
       | .resource.valueQuantity.code == "mm" and .request.ifNoneExist ==
         ("identifier=urn:penlink:observation|" + ($v | gsub("/"; "%2F")))' \
  "$T/all.json" >/dev/null || fail "max-depth Observation"
ok "Observation max-depth: mm (UCUM), its own conditional create"
expect 0 sessions export --format fhir --out "$T/again.json" "$T"/recs/*.plrec
cmp -s "$T/all.json" "$T/again.json" || fail "a second export differs"
ok "exported again: byte-identical (same fullUrls and conditions, so a re-send creates nothing)"
expect 0 --json sessions export --format fhir --dir "$T/bundles" "$T"/recs/*.plrec
[ "$(jqo '.files | length')" = 3 ] || fail "--dir wrote $(jqo '.files | length') files"
for f in "$T"/bundles/*.fhir.json; do
  fhir_check "$f" 1 >/dev/null || fail "$f"
done
ok "--dir: one valid Bundle per session, SERIAL-SEQ-UUID.fhir.json"
expect 2 sessions export --format fhir --out "$T/x.json" --dir "$T/d" "$T"/recs/*.plrec
ok "--out and --dir exclude each other"
done_testing
