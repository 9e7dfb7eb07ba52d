#!/usr/bin/env bash
# Installs what penlink needs to build and test on Debian 12, skipping what is
# already there so repeated runs are quick and need no network.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libusb-1.0-0-dev libserialport-dev
  libprotobuf-c-dev protobuf-c-compiler
  libjson-c-dev libssl-dev zlib1g-dev libsqlite3-dev libinih-dev
  libcmocka-dev
  postgresql-15 libpq-dev
  libsystemd-dev systemd scdoc groff-base man-db bash-completion
  debhelper dpkg-dev fakeroot lintian appstream
  jq valgrind util-linux procps sqlite3
  clang libclang-rt-14-dev
  chromium poppler-utils fonts-dejavu-core nodejs
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The report tier installs its FHIR validator with npm; a nodejs that
# brings its own npm (NodeSource's) must not get Debian's beside it.
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "penlink: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
