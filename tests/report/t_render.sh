#!/usr/bin/env bash
# A session report rendered by headless Chromium: on A4 and on US Letter it
# prints on one or two pages with the serial, UUID, digest, preset and
# cartridge in the PDF's text (nothing cut off); the screenshot's plots are
# drawn; the DOM holds the three plots and nothing but the report's own
# markup.
. "$(dirname "$0")/lib.sh"
need_chromium

start_emu pen --sessions 1 --session-bytes 400000 --serial PEN-R001
expect 0 --port "$EMU_PORT" sessions pull --out "$T/recs" --keep
rec=$(ls "$T"/recs/*.plrec)
expect 0 sessions report "$rec" --out "$T/r.html"
assert_contains "$OUT" "wrote the treatment report" "sessions report writes the file"
uuid=$(basename "$rec" .plrec | sed 's/^PEN-R001-000001-//')
sha=$(sha256sum "$rec" | cut -d' ' -f1)
expect 0 --json sessions show "$rec"
preset=$(jqo .preset.name)
lot=$(jqo .cartridge.lot)
size=$(stat -c %s "$T/r.html")
[ "$size" -lt 524288 ] || fail "report is $size bytes"
ok "report is $size bytes, self-contained"
! grep -Eq '<script|<link|<img|src=|href=|@import|url\(' "$T/r.html" ||
  fail "the report refers to something outside itself"
ok "no script, link, image, src, href, @import or url() in the HTML"

for paper in A4 letter; do
  with_page_size "$T/r.html" "$paper" "$T/r-$paper.html"
  to_pdf "$T/r-$paper.html" "$T/r-$paper.pdf" || fail "chromium printed no PDF ($paper)"
  n=$(pages "$T/r-$paper.pdf")
  [ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "$paper: $n pages"
  ok "$paper: $n page(s), $(pdfinfo "$T/r-$paper.pdf" | awk '/^Page size/ {print $3 "x" $5 " pt"}')"
  pdftotext -layout "$T/r-$paper.pdf" "$T/r-$paper.txt"
  txt=$(tr -s ' \n' ' ' <"$T/r-$paper.txt")
  for want in PEN-R001 "$uuid" "$sha" "$preset" "$lot" "Needle depth" "Motor current" "Battery voltage"; do
    case "$txt" in *"$want"*) ;; *) fail "$paper: '$want' not in the PDF's text" ;; esac
  done
  ok "$paper: the PDF's text holds the serial, UUID, whole SHA-256, preset, lot and plot titles"
done
to_png "$T/r.html" "$T/r.png" 1000,3000 || fail "chromium took no screenshot"
$PY "$HERE/check.py" plots "$T/r.png" || fail "the plots in the screenshot"
ok "screenshot: the three plots are drawn and the plot area is not blank"
dump_dom "$T/r.html" "$T/r.dom" || fail "chromium dumped no DOM"
$PY "$HERE/check.py" dom "$T/r.dom" 3 PEN-R001 "$uuid" "$sha" || fail "DOM"
ok "DOM: three SVG plots, the report's own elements only"
$PY "$HERE/check.py" bytes "$T/r.html" || fail "control characters"
ok "HTML is valid UTF-8 without control characters"
# the default file name, from the record's key
(cd "$T" && "$PENCTL" sessions report "$rec" >/dev/null) || fail "report without --out"
[ -s "$T/PEN-R001-000001-$uuid.html" ] || fail "no default-named report"
ok "without --out: SERIAL-SEQ-UUID.html"
expect 8 sessions report "$T/r.html"
ok "a file that is not a record exits 8"
done_testing
