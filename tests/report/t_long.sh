#!/usr/bin/env bash
# A 2-hour session (100 samples a second: 720,000 per series) renders in a
# few seconds, the HTML stays under PL_REPORT_HTML_MAX (512 KiB; about the
# same size as a 30-minute session's, since telemetry is drawn per pixel
# column), the report still prints on one or two pages, and one-sample
# peaks survive the drawing's reduction.
. "$(dirname "$0")/lib.sh"
need_chromium
now_ms() { date +%s%3N; }

"$REPORT_GEN" --out "$T/long.plrec" --minutes 120 --interval-ms 10 --spike >/dev/null ||
  fail "report_gen"
"$REPORT_GEN" --out "$T/short.plrec" --minutes 30 --interval-ms 10 --seq 2 >/dev/null ||
  fail "report_gen"
ok "records: 2 h $(stat -c %s "$T/long.plrec") bytes, 30 min $(stat -c %s "$T/short.plrec") bytes"
t0=$(now_ms)
expect 0 sessions report "$T/long.plrec" --out "$T/long.html"
t1=$(now_ms)
ms=$((t1 - t0))
limit=3000
[ "${PL_SANITIZE:-OFF}" = ON ] || [ -n "${PL_TEST_WRAPPER:-}" ] && limit=30000
[ "$ms" -le "$limit" ] || fail "penctl took $ms ms for a 2-hour session (limit $limit)"
ok "penctl sessions report of a 2-hour session: $ms ms"
size=$(stat -c %s "$T/long.html")
[ "$size" -lt 524288 ] || fail "2-hour report is $size bytes (limit 524288)"
expect 0 sessions report "$T/short.plrec" --out "$T/short.html"
short=$(stat -c %s "$T/short.html")
[ "$size" -lt $((short * 2)) ] || fail "2-hour report $size bytes vs 30-minute $short: grows with the session"
ok "HTML: 2 h $size bytes, 30 min $short bytes (limit 524288)"
$PY "$HERE/check.py" ticks "$T/long.html" current 950 || fail "current peak"
$PY "$HERE/check.py" ticks "$T/long.html" depth 1.4 || fail "depth peak"
ok "one-sample peaks (950 mA, 1.40 mm) survive the per-column reduction"
t0=$(now_ms)
to_pdf "$T/long.html" "$T/long.pdf" || fail "no PDF"
t1=$(now_ms)
n=$(pages "$T/long.pdf")
[ "$n" -ge 1 ] && [ "$n" -le 2 ] || fail "2-hour report: $n pages"
[ $((t1 - t0)) -le 20000 ] || fail "chromium took $((t1 - t0)) ms"
ok "Chromium prints the 2-hour report in $((t1 - t0)) ms (browser start included): $n page(s)"
pdftotext "$T/long.pdf" - | grep -q "events listed" || fail "no note on the capped event list"
ok "the event table is capped and says so"
to_png "$T/long.html" "$T/long.png" 1000,3000 || fail "no screenshot"
$PY "$HERE/check.py" plots "$T/long.png" || fail "plots"
ok "plots drawn"
# a session timed by the pen's uptime only
"$REPORT_GEN" --out "$T/up.plrec" --minutes 5 --interval-ms 50 --uptime --seq 3 >/dev/null
expect 0 sessions report "$T/up.plrec" --out "$T/up.html"
grep -q "the pen&#39;s clock was not set" "$T/up.html" || fail "uptime times not explained"
ok "a session timed by uptime says the pen's clock was not set"
done_testing
