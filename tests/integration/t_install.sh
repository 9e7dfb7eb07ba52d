#!/usr/bin/env bash
# cmake --install gives a library, its header and a relocatable penlink.pc
# that a program outside the tree builds and links against; the library
# exports only the documented pl_ names.
. "$(dirname "$0")/lib.sh"
: "${PL_BUILD_DIR:?}"

cmake --install "$PL_BUILD_DIR" --prefix "$T/prefix" >/dev/null || fail "cmake --install failed"
for f in include/penlink.h include/penlink_wire.h lib/pkgconfig/penlink.pc bin/penctl bin/penemu; do
  [ -e "$T/prefix/$f" ] || fail "$f not installed"
done
ok "library, header, pkg-config file and programs installed"
# Everything lands under the prefix: the unit, udev rule, sysusers.d and
# tmpfiles.d entries, the configuration and the man pages included.
manifest="$PL_BUILD_DIR/install_manifest.txt"
[ -s "$manifest" ] || fail "cmake --install wrote no install_manifest.txt"
outside=$(grep -v "^$T/prefix/" "$manifest" || true)
[ -z "$outside" ] || fail "cmake --install --prefix wrote outside the prefix: $outside"
for f in lib/systemd/system/penlinkd.service lib/udev/rules.d/70-penlink.rules \
         lib/sysusers.d/penlink.conf lib/tmpfiles.d/penlink.conf etc/penlink/penlinkd.conf \
         share/man/man1/penctl.1 share/man/man8/penlinkd.8 share/man/man5/penlinkd.conf.5; do
  [ -e "$T/prefix/$f" ] || fail "$f is not installed under the prefix"
done
assert_eq "$(PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig" pkg-config --variable=includedir penlink | xargs realpath)" \
  "$(realpath "$T/prefix/include")" "penlink.pc points at the prefix's include folder"
ok "nothing is written outside the prefix (unit, rules, sysusers, tmpfiles, config, man pages under it)"

cat >"$T/use.c" <<'C'
#include <penlink.h>
#include <stdio.h>
int main(void)
{
	struct pl_transport *t;
	int rc = pl_transport_open("/dev/penlink-test-none", &t);
	printf("%s|%s\n", pl_error_name(rc), pl_error_message());
	return rc == PL_ERR_NO_PORT ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$T/prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs penlink) || fail "pkg-config does not find penlink"
san=()
[ "${PL_SANITIZE:-OFF}" = ON ] && san=(-fsanitize=address,undefined)
cc -std=c11 -Wall -Werror "${san[@]}" "$T/use.c" $flags -Wl,-rpath,"$T/prefix/lib" -o "$T/use" || fail "consumer does not build"
out=$("$T/use") || fail "consumer failed: $out"
assert_contains "$out" "no such port|no such port: /dev/penlink-test-none" "installed library works from outside the tree"

# Both ways: every exported symbol is a function the installed headers
# declare, and every declared function is exported (no test hook, no
# internal, nothing forgotten in the explicit export list).
exported=$(nm -D --defined-only "$T/prefix/lib/libpenlink.so" | awk '$2 == "T" {sub(/@.*/, "", $3); print $3}' | sort)
declared=$(cat "$T/prefix/include/penlink.h" "$T/prefix/include/penlink_wire.h" |
  perl -0pe 's{/\*.*?\*/}{}gs' |
  grep -o '\bpl_[a-z0-9_]*[[:space:]]*(' | tr -d ' (' | sort -u |
  grep -v -x -e pl_frame_cb -e pl_frame_drop_cb)
typedefs=$(grep -ho 'typedef [^;]*(\*pl_[a-z_]*)' "$T/prefix/include/penlink.h" "$T/prefix/include/penlink_wire.h" | grep -o 'pl_[a-z_]*' || true)
declared=$(comm -23 <(echo "$declared") <(echo "$typedefs" | sort))
assert_eq "$(comm -3 <(echo "$exported") <(echo "$declared") | tr -s ' \t\n' ' ')" "" "exports are exactly the documented functions"
[ -e "$T/prefix/include/penlink_test.h" ] && fail "the test hooks header is installed"
nm -D --defined-only "$T/prefix/lib/libpenlink.so" | grep -q pl_transport_memory && fail "a test hook is exported"
ok "test hooks neither installed nor exported"
# The tools through the door: penctl and penlinkd configure and build from a
# copy of their own folders, without lib/, against the installed library.
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$T/src"
# Every component but the library itself (and what is not built: tests,
# packaging), so a new component folder is copied without editing this.
for d in "$src"/*; do
  case "$(basename "$d")" in lib|firmware-bridge|tests|debian|scripts|build*) continue ;; esac
  cp -r "$d" "$T/src/"
done
if cmake -S "$T/src" -B "$T/tools" -DPENLINK_TOOLS_ONLY=ON -DBUILD_TESTING=OFF \
     -DPENLINK_SANITIZE="${PL_SANITIZE:-OFF}" -DCMAKE_BUILD_TYPE=Debug \
     >"$T/tools.log" 2>&1 &&
   cmake --build "$T/tools" -j2 --target penctl penlinkd >>"$T/tools.log" 2>&1; then
  ok "penctl and penlinkd build without lib/, against the installed libpenlink"
else
  tail -n 30 "$T/tools.log" >&2
  fail "the tools do not build against the installed libpenlink"
fi
assert_contains "$(ldd "$T/tools/cli/penctl")" "$T/prefix/lib/libpenlink.so" "penctl uses the installed shared library"
done_testing
