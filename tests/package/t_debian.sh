#!/usr/bin/env bash
# penlink as a Debian citizen, end to end on this machine:
#   build   dpkg-buildpackage from a copy of the source (what git tracks, plus
#           files not yet committed), four packages and a symbols file that
#           matches the library;
#   lint    lintian: no errors;
#   install apt installs them: users and groups from sysusers.d, the
#           archive's folder from tmpfiles.d, the conffile, man pages, a
#           library a program builds against with pkg-config, and the
#           installed penlinkd/penctl/penemu archiving a real session;
#   upgrade to a newer version keeps a locally changed conffile and the
#           archive;
#   remove  and purge leave no file of the packages, except that the
#           archive in /var/lib/penlink survives even a purge.
set -uo pipefail
: "${PL_SOURCE_DIR:?}"
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: installing packages needs root"; exit 77
fi
T=$(mktemp -d -t penlink-pkg.XXXXXX)
PIDS=()
PKGS=(penlink-tools penlink libpenlink-dev libpenlink0)
purge_all() { dpkg --purge "${PKGS[@]}" >/dev/null 2>&1 || true; }
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  purge_all
  # The archive survives a purge on purpose; the test's own goes here.
  rm -rf /var/lib/penlink
  rm -rf "$T"
}
trap cleanup EXIT
CHECKS=0
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { CHECKS=$((CHECKS + 1)); echo "ok $CHECKS - $*"; }
assert_contains() { case "$1" in *"$2"*) ok "$3" ;; *) fail "$3: '$2' not found in: $1" ;; esac; }

purge_all
rm -rf /var/lib/penlink

# ---- build
mkdir -p "$T/src"
(cd "$PL_SOURCE_DIR" && git ls-files -co --exclude-standard -z |
  while IFS= read -r -d '' f; do { [ -e "$f" ] || [ -L "$f" ]; } && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$T/src") || fail "cannot copy the source"
build() {
  (cd "$T/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" \
    dpkg-buildpackage -b -uc -us >"$T/build-$1.log" 2>&1) || {
    tail -n 40 "$T/build-$1.log" >&2; fail "dpkg-buildpackage ($1) failed"; }
}
build 1
ver=$(cd "$T/src" && dpkg-parsechangelog -S Version)
for p in "${PKGS[@]}"; do
  [ -f "$T/${p}_${ver}_$(dpkg --print-architecture).deb" ] || fail "no $p package"
done
ok "dpkg-buildpackage builds ${PKGS[*]} $ver"
grep -q "dpkg-gensymbols: warning" "$T/build-1.log" &&
  { grep -A30 "dpkg-gensymbols: warning" "$T/build-1.log" >&2; fail "debian/libpenlink0.symbols does not match the library's exports"; }
ok "the symbols file matches the library's exports"

# ---- lint
lintian --fail-on error,warning \
  "$T"/penlink_"$ver"_*.changes >"$T/lintian.log" 2>&1 ||
  { cat "$T/lintian.log" >&2; fail "lintian reports errors"; }
sed 's/^/  lintian: /' "$T/lintian.log"
ok "lintian: no errors"

# ---- install
debs=()
for p in "${PKGS[@]}"; do debs+=("$T/${p}_${ver}_$(dpkg --print-architecture).deb"); done
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}" >"$T/apt.log" 2>&1 ||
  { cat "$T/apt.log" >&2; fail "apt-get install failed"; }
ok "apt installs the four packages"
for u in penlink; do getent passwd "$u" >/dev/null || fail "no user $u"; done
for g in penlink penlink-logs penlink-tech; do getent group "$g" >/dev/null || fail "no group $g"; done
ok "sysusers.d created the penlink user and the penlink, penlink-logs and penlink-tech groups"
assert_contains "$(stat -c '%U:%G %a' /var/lib/penlink)" "penlink:penlink 750" "tmpfiles.d created /var/lib/penlink owned by penlink, mode 0750"
assert_contains "$(dpkg-query -W -f='${Conffiles}' penlink)" "/etc/penlink/penlinkd.conf" "penlinkd.conf is a conffile"
for f in /lib/systemd/system/penlinkd.service /lib/udev/rules.d/70-penlink.rules \
         /usr/share/man/man1/penctl.1.gz /usr/share/man/man8/penlinkd.8.gz \
         /usr/share/man/man5/penlinkd.conf.5.gz /usr/share/man/man1/penemu.1.gz; do
  [ -e "$f" ] || fail "$f is not installed"
done
ok "unit, udev rule and man pages installed where Debian looks"
man -w penctl penlinkd penlinkd.conf penemu >"$T/man.log" 2>&1 ||
  { cat "$T/man.log" >&2; fail "man -w does not find every page"; }
ok "man finds penctl(1), penlinkd(8), penlinkd.conf(5), penemu(1)"
assert_contains "$(/usr/bin/penctl --version)" "$(sed -n 's/^project(penlink VERSION \([0-9.]*\).*/\1/p' "$T/src/CMakeLists.txt")" "the installed penctl --version says the packaged version"
[ -f /usr/share/bash-completion/completions/penctl ] || fail "no bash completion for penctl"
assert_eq_words=$(bash -c 'source /usr/share/bash-completion/completions/penctl
  COMP_WORDS=(penctl sessions p); COMP_CWORD=2; _penctl; echo "${COMPREPLY[*]}"')
assert_contains "$assert_eq_words" "pull" "the installed bash completion completes 'penctl sessions p' to pull"
appstreamcli validate --no-net /usr/share/metainfo/penlink.metainfo.xml >"$T/appstream.log" 2>&1 ||
  { cat "$T/appstream.log" >&2; fail "the AppStream metadata does not validate"; }
ok "the AppStream metadata (the pen's modalias) validates"
assert_contains "$(grep '^Type=' /lib/systemd/system/penlinkd.service)" "Type=notify" "the unit is Type=notify"
if command -v systemd-analyze >/dev/null; then
  systemd-analyze verify /lib/systemd/system/penlinkd.service >"$T/verify.log" 2>&1 ||
    { cat "$T/verify.log" >&2; fail "systemd-analyze verify rejects the unit"; }
  ok "systemd-analyze verify accepts the unit"
fi
assert_contains "$(dpkg -S /usr/bin/penemu)" "penlink-tools" "penemu is in penlink-tools, not beside penctl"
assert_contains "$(pkg-config --cflags --libs penlink)" "-lpenlink" "pkg-config finds the installed library"
cat >"$T/use.c" <<'C'
#include <penlink.h>
#include <stdio.h>
int main(void) { printf("%s\n", pl_error_name(PL_ERR_POLICY)); return 0; }
C
cc -std=c11 -Wall -Werror "$T/use.c" $(pkg-config --cflags --libs penlink) -o "$T/use" ||
  fail "a program does not build against libpenlink-dev"
assert_contains "$("$T/use")" "policy" "a program built with pkg-config runs against libpenlink0"

# The installed programs do the main job: a virtual pen's sessions archived.
/usr/bin/penemu --pty --sessions 2 --serial PEN-PKG-1 >"$T/emu.out" 2>"$T/emu.err" &
PIDS+=($!)
for i in $(seq 100); do [ -s "$T/emu.out" ] && break; sleep 0.05; done
port=$(head -n1 "$T/emu.out")
[ -n "$port" ] || fail "the installed penemu did not start"
/usr/sbin/penlinkd --foreground --no-usb --socket "$T/pl.sock" --db /var/lib/penlink/archive.db \
  --port "$port" >"$T/daemon.log" 2>&1 &
DPID=$!
PIDS+=("$DPID")
n=0
for i in $(seq 300); do
  n=$(/usr/bin/penctl --socket "$T/pl.sock" --json sessions list 2>/dev/null | jq '.sessions | length' 2>/dev/null || echo 0)
  [ "$n" = 2 ] && break
  sleep 0.1
done
[ "$n" = 2 ] || { cat "$T/daemon.log" >&2; fail "the installed penlinkd did not archive the pen's 2 sessions"; }
kill "$DPID"; wait "$DPID" || fail "penlinkd did not stop cleanly"
ok "the installed penemu, penlinkd and penctl archive a real download into /var/lib/penlink"
digest_before=$(sqlite3 /var/lib/penlink/archive.db "SELECT group_concat(h, ',') FROM (SELECT hex(sha256) AS h FROM sessions ORDER BY serial, uuid)")
[ -n "$digest_before" ] || fail "no digests in the archive"

# ---- upgrade: the same source as a newer version; a changed conffile stays.
echo "# changed by the clinic" >>/etc/penlink/penlinkd.conf
{ printf 'penlink (%s+1) unstable; urgency=medium\n\n  * Test upgrade.\n\n -- t_debian <test@penlink.invalid>  %s\n\n' \
    "$ver" "$(date -R)"; cat "$T/src/debian/changelog"; } >"$T/changelog" &&
  mv "$T/changelog" "$T/src/debian/changelog"
rm -f "$T"/*.deb "$T"/*.changes "$T"/*.buildinfo
build 2
debs=()
for p in "${PKGS[@]}"; do debs+=("$T/${p}_${ver}+1_$(dpkg --print-architecture).deb"); done
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold "${debs[@]}" >"$T/apt2.log" 2>&1 ||
  { cat "$T/apt2.log" >&2; fail "the upgrade failed"; }
assert_contains "$(dpkg-query -W -f='${Version}' penlink)" "$ver+1" "apt upgrades to $ver+1"
assert_contains "$(tail -n1 /etc/penlink/penlinkd.conf)" "changed by the clinic" "the upgrade keeps the clinic's configuration"

# ---- remove, purge
files=$(dpkg -L "${PKGS[@]}" | sort -u)
DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "${PKGS[@]}" >"$T/remove.log" 2>&1 || fail "apt-get remove failed"
[ -e /usr/sbin/penlinkd ] && fail "penlinkd is still there after remove"
[ -e /etc/penlink/penlinkd.conf ] || fail "remove deleted the conffile (only purge may)"
ok "remove takes the programs and keeps the configuration"
# apt no longer knows packages installed from files once they are removed;
# dpkg purges what is left of them (the conffile).
dpkg --purge "${PKGS[@]}" >"$T/purge.log" 2>&1 || { cat "$T/purge.log" >&2; fail "dpkg --purge failed"; }
assert_contains "$(cat "$T/purge.log")" "session archive in /var/lib/penlink is kept" "purge says the archive is kept"
[ -z "$(dpkg -l "${PKGS[@]}" 2>/dev/null | grep '^[a-z][a-z] ' | grep -v '^un' || true)" ] ||
  fail "packages are still known to dpkg after purge"
left=""
while IFS= read -r f; do
  # Folders (and /lib, a link to usr/lib on a merged-/usr system) are
  # shared with other packages; files are what must go.
  [ -d "$f" ] && continue
  { [ -f "$f" ] || [ -L "$f" ]; } && left+="$f "
done <<<"$files"
[ -z "$left" ] || fail "files of the packages are left after purge: $left"
[ -e /etc/penlink ] && fail "/etc/penlink is left after purge"
ok "purge leaves no file of the packages and no /etc/penlink"
digest_after=$(sqlite3 /var/lib/penlink/archive.db "SELECT group_concat(h, ',') FROM (SELECT hex(sha256) AS h FROM sessions ORDER BY serial, uuid)")
[ "$digest_after" = "$digest_before" ] || fail "the archive changed across upgrade, remove and purge"
ok "the session archive survives upgrade, remove and purge, every digest intact"
echo "$CHECKS passed, 0 failed"
