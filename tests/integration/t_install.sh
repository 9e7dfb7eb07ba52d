#!/usr/bin/env bash
# cmake --install gives a library, its header and a relocatable penlink.pc
# that a program outside the tree builds and links against; the library
# exports only the documented pl_ names.
. "$(dirname "$0")/lib.sh"
: "${PL_BUILD_DIR:?}"

cmake --install "$PL_BUILD_DIR" --prefix "$T/prefix" >/dev/null || fail "cmake --install failed"
for f in include/penlink.h lib/pkgconfig/penlink.pc bin/penctl bin/penemu; do
  [ -e "$T/prefix/$f" ] || fail "$f not installed"
done
ok "library, header, pkg-config file and programs installed"

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

internal=$(nm -D --defined-only "$T/prefix/lib/libpenlink.so" | awk '{print $3}' | grep -v '^pl_[a-z]' | grep -v '^PENLINK_' || true)
assert_eq "$internal" "" "only documented pl_ names are exported"
done_testing
