#!/usr/bin/env bash
# scripts/sbom.sh lists, as CycloneDX 1.5 JSON, every shared library the
# built programs load, each with the Debian package and version dpkg has
# installed: what a regulator's SBOM request asks for.
. "$(dirname "$0")/lib.sh"
: "${PL_BUILD_DIR:?}"
src=$(cd "$(dirname "$0")/../.." && pwd)
bash "$src/scripts/sbom.sh" "$PL_BUILD_DIR" >"$T/sbom.json" 2>"$T/sbom.err" ||
  { cat "$T/sbom.err" >&2; fail "scripts/sbom.sh failed"; }
OUT=$(cat "$T/sbom.json")
assert_eq "$(jqo .bomFormat)/$(jqo .specVersion)" "CycloneDX/1.5" "a CycloneDX 1.5 document"
assert_eq "$(jqo .metadata.component.name)" "penlink" "the component is penlink"
arch=$(dpkg --print-architecture)
for pkg in libjson-c5 libsqlite3-0 libprotobuf-c1 libssl3 libusb-1.0-0 libsystemd0 libinih1; do
  want=$(dpkg-query -W -f='${Version}' "$pkg:$arch" 2>/dev/null || dpkg-query -W -f='${Version}' "$pkg")
  assert_eq "$(jqo ".components[] | select(.name == \"$pkg\") | .version")" "$want" "$pkg at the version dpkg has installed"
done
# Every component has a Debian package URL and is a dependency of penlink.
assert_eq "$(jqo '[.components[] | select(.purl | startswith("pkg:deb/debian/") | not)] | length')" "0" "every component has a pkg:deb purl"
assert_eq "$(jqo '(.dependencies[0].dependsOn | length) == (.components | length)')" "true" "penlink depends on every component"
assert_eq "$(jqo '[.components[] | select(.name | test("penlink"))] | length')" "0" "penlink's own library is the component, not a dependency"
# Nothing the programs load is left out: compare with ldd.
mapfile -t libs < <(for b in cli/penctl daemon/penlinkd firmware-bridge/penemu; do ldd "$PL_BUILD_DIR/$b"; done |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | grep -v libpenlink | xargs readlink -f | sort -u)
n_ldd=$(for l in "${libs[@]}"; do printf '%s\n%s\n' "$l" "${l#/usr}"; done |
  xargs dpkg -S 2>/dev/null | cut -d: -f1 | sort -u | wc -l)
assert_eq "$(jqo '.components | length')" "$n_ldd" "one component per package of every library ldd shows"
done_testing
