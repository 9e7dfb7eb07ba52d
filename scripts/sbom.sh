#!/usr/bin/env bash
# Writes a CycloneDX 1.5 SBOM (JSON) of penlink's programs: every shared
# library they load, with the Debian package and version it comes from, as
# regulators of connected medical devices ask for.  Read off the built
# binaries with ldd, so it lists what is really linked, not what CMake was
# asked for.
#
#   scripts/sbom.sh [BUILD_DIR] > penlink.cdx.json      (default: build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
bins=("$build/cli/penctl" "$build/daemon/penlinkd" "$build/firmware-bridge/penemu")
for b in "${bins[@]}"; do
  [ -x "$b" ] || { echo "sbom: $b is not built (bash scripts/build.sh $build)" >&2; exit 2; }
done
version=$(sed -n 's/^project(penlink VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
arch=$(dpkg --print-architecture)

# Every library any of the programs loads, resolved to a real path; our own
# libpenlink is the component itself, not a dependency.
mapfile -t libs < <(for b in "${bins[@]}"; do ldd "$b"; done |
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' | grep -v '/libpenlink\.so' |
  xargs -r readlink -f | sort -u)

# One dpkg -S for every library (it reads every package's file list, so
# one call per library would take a minute).  dpkg knows files by the path
# it installed; with merged /usr a library found under /usr/lib may be
# listed under /lib, so each is asked both ways.
declare -A owner_of=()
queries=()
for lib in "${libs[@]}"; do queries+=("$lib" "${lib#/usr}"); done
while IFS= read -r line; do
  pkgs=${line%%: *}
  path=${line#*: }
  owner_of[$path]=${pkgs%%,*}
done < <(dpkg -S "${queries[@]}" 2>/dev/null || true)

components=()
declare -A seen=()
for lib in "${libs[@]}"; do
  pkg=${owner_of[$lib]:-${owner_of[${lib#/usr}]:-}}
  pkg=${pkg%%:*}
  if [ -z "$pkg" ]; then
    echo "sbom: $lib belongs to no Debian package" >&2
    exit 1
  fi
  [ -n "${seen[$pkg]:-}" ] && continue
  seen[$pkg]=1
  ver=$(dpkg-query -W -f='${Version}' "$pkg:$arch" 2>/dev/null || dpkg-query -W -f='${Version}' "$pkg")
  src=$(dpkg-query -W -f='${source:Package}' "$pkg:$arch" 2>/dev/null || echo "$pkg")
  components+=("$(jq -n --arg n "$pkg" --arg v "$ver" --arg a "$arch" --arg s "$src" --arg f "$(basename "$lib")" '{
    type: "library", "bom-ref": ("pkg:deb/debian/" + $n + "@" + $v + "?arch=" + $a),
    name: $n, version: $v,
    purl: ("pkg:deb/debian/" + $n + "@" + $v + "?arch=" + $a + "&distro=debian-12"),
    properties: [{name: "penlink:file", value: $f}, {name: "debian:source", value: $s}]}')")
done

printf '%s\n' "${components[@]}" | jq -s --arg v "$version" --arg t "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg serial "urn:uuid:$(cat /proc/sys/kernel/random/uuid)" '{
  bomFormat: "CycloneDX", specVersion: "1.5", serialNumber: $serial, version: 1,
  metadata: {timestamp: $t, component: {type: "application", "bom-ref": "penlink",
    name: "penlink", version: $v, description: "Host software for USB microneedling pens"}},
  components: .,
  dependencies: [{ref: "penlink", dependsOn: [.[]."bom-ref"]}]}'
