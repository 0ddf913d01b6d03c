#!/bin/sh
# t-version.sh - the version is the same from the header, the library and
# pkg-config: OSMEM_VERSION_STRING and the numbers of osmem.h, os_version()
# of the library a program loads, and pkg-config --modversion osmem of the
# osmem.pc that configure made.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}" "${CC:=cc}"
. "$top_srcdir/tests/tap.sh"

tmp=${TMPDIR:-/tmp}/t-version.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99
echo "1..4"

lib=$(libosmem_link_flags "$top_builddir/.libs")

cat >"$tmp/v.c" <<'END'
#include <osmem.h>
#include <stdio.h>

#if OSMEM_VERSION != OSMEM_VERSION_MAJOR * 10000 + OSMEM_VERSION_MINOR * 100 + OSMEM_VERSION_PATCH
# error "OSMEM_VERSION does not follow from its parts"
#endif

int main(void)
{
	printf("%s\n%d.%d.%d\n%s\n", OSMEM_VERSION_STRING, OSMEM_VERSION_MAJOR,
	       OSMEM_VERSION_MINOR, OSMEM_VERSION_PATCH, os_version());
	return 0;
}
END
$CC ${OSMEM_SAN_CFLAGS-} -I"$top_builddir/include" -o "$tmp/v" "$tmp/v.c" $lib >"$tmp/log" 2>&1
if ! ok $? "a program built against osmem.h links" "$tmp/log" || [ -z "$lib" ]; then
	skip "no program to run" 3
	exit 0
fi
LD_LIBRARY_PATH=$top_builddir/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/v" >"$tmp/out"
header=$(sed -n 1p "$tmp/out")
numbers=$(sed -n 2p "$tmp/out")
library=$(sed -n 3p "$tmp/out")
[ -n "$header" ] && [ "$header" = "$numbers" ]
ok $? "OSMEM_VERSION_STRING ($header) and the numbers ($numbers) agree"
[ "$library" = "$header" ]
ok $? "os_version() of the library ($library) is the header's version"
if command -v "${PKG_CONFIG:-pkg-config}" >/dev/null 2>&1; then
	pc=$(PKG_CONFIG_PATH=$top_builddir "${PKG_CONFIG:-pkg-config}" --modversion osmem 2>"$tmp/log")
	[ "$pc" = "$header" ]
	ok $? "pkg-config --modversion osmem ($pc) is the same" "$tmp/log"
else
	skip "pkg-config is not installed"
fi
