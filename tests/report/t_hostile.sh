#!/usr/bin/env bash
# Hostile text in every field a pen controls (serial, preset name, lot,
# firmware: <script>, "><svg onload=...>, <img onerror>, control
# characters) renders as text, never as markup: Chromium's DOM after
# loading holds no injected element or handler, the text shows literally,
# and control characters are visible escapes.  The same record's FHIR
# Bundle is valid.
. "$(dirname "$0")/lib.sh"
need_chromium

"$REPORT_GEN" --out "$T/h.plrec" --minutes 20 --interval-ms 20 --hostile >/dev/null ||
  fail "report_gen"
expect 0 sessions report "$T/h.plrec" --out "$T/h.html"
$PY "$HERE/check.py" bytes "$T/h.html" || fail "raw control characters in the HTML"
ok "no raw control character reaches the HTML"
dump_dom "$T/h.html" "$T/h.dom" || fail "no DOM"
$PY "$HERE/check.py" dom "$T/h.dom" 3 \
  'PEN<script>alert(1)</script>\x1b[31m\x07' \
  '"><svg onload=alert(2)>' \
  '<img src=x onerror=alert(3)>\x01' \
  '1.0<b>x</b>\x0d\x0a' || fail "hostile text became markup"
ok "DOM: no injected element or handler; the hostile text is text, control characters as \\x escapes"
to_pdf "$T/h.html" "$T/h.pdf" || fail "no PDF"
pdftotext "$T/h.pdf" - | tr -s ' \n' ' ' >"$T/h.txt"
grep -qF 'onload=alert(2)' "$T/h.txt" || fail "hostile preset name not printed"
grep -qF '<script>alert(1)</script>' "$T/h.txt" || fail "hostile serial not printed"
ok "the printed report shows the hostile text as text"

# the overview and FHIR of the same record
expect 0 report --since 2026-01-01 --out "$T/o.html" "$T/h.plrec"
$PY "$HERE/check.py" bytes "$T/o.html" || fail "control characters in the overview"
dump_dom "$T/o.html" "$T/o.dom" || fail "no DOM"
$PY "$HERE/check.py" dom "$T/o.dom" 3 'PEN<script>alert(1)</script>\x1b[31m\x07' ||
  fail "overview DOM"
ok "the overview: hostile serial and preset as text, three plots"
need_validator
expect 0 sessions export --format fhir --out "$T/h.json" "$T/h.plrec"
fhir_check "$T/h.json" 1 || fail "the hostile record's Bundle"
ok "the hostile record's FHIR Bundle is valid, strings without control characters"
done_testing
