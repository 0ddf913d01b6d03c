#!/bin/sh
# t-header.sh - osmem.h stands on its own: it compiles as the first
# and only include under strict C and C++ settings, and a C++ program that
# calls the library links, which proves the extern "C" block.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}" "${CC:=cc}"
. "$top_srcdir/tests/tap.sh"

tmp=${TMPDIR:-/tmp}/t-header.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99

# The C++ compiler: $CXX if set, else the one that goes with $CC.
if [ -z "${CXX-}" ]; then
	case $CC in
	*clang*) candidates="clang++ c++ g++" ;;
	*) candidates="c++ g++ clang++" ;;
	esac
	for c in $candidates; do
		if command -v "$c" >/dev/null 2>&1; then
			CXX=$c
			break
		fi
	done
fi

c_stds="c89 c99 c11 gnu11"
cxx_stds="c++98 c++11 c++17"
echo "1..$(( $(echo $c_stds | wc -w) + $(echo $cxx_stds | wc -w) + 1 ))"

# Uses every declaration, so that the attributes are checked too, and
# includes the header twice to check its guard.
cat >"$tmp/use.c" <<'END'
#include <osmem.h>
#include <osmem.h>

int main(void)
{
	char *p = (char *)os_malloc(16);
	char *q = (char *)os_calloc(4, 4);
	char *r = (char *)os_realloc(p, 32);
	if (r)
		p = r;
	os_free(q);
	os_free(p);
	return 0;
}
END
cp "$tmp/use.c" "$tmp/use.cc"

strict="-Wall -Wextra -Werror -pedantic"
for std in $c_stds; do
	$CC -std=$std $strict -I"$top_builddir/include" -c "$tmp/use.c" -o "$tmp/use.o" \
		>"$tmp/log" 2>&1
	ok $? "osmem.h compiles alone in C with -std=$std $strict" "$tmp/log"
done

if [ -z "${CXX-}" ]; then
	for std in $cxx_stds; do skip "no C++ compiler"; done
	skip "no C++ compiler"
	exit 0
fi

for std in $cxx_stds; do
	$CXX -std=$std $strict -I"$top_builddir/include" -c "$tmp/use.cc" -o "$tmp/use.o" \
		>"$tmp/log" 2>&1
	ok $? "osmem.h compiles alone in C++ with $CXX -std=$std $strict" "$tmp/log"
done

# Linking fails with undefined C++-mangled names if the declarations are
# not inside extern "C".  The shared library is preferred; the archive
# needs the thread library besides.
lib=$(libosmem_link_flags "$top_builddir/.libs")
if [ -z "$lib" ]; then
	skip "the library was not built"
	exit 0
fi
$CXX -I"$top_builddir/include" ${OSMEM_SAN_CFLAGS-} -o "$tmp/use" "$tmp/use.cc" $lib \
	>"$tmp/log" 2>&1 &&
	LD_LIBRARY_PATH=$top_builddir/.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/use" \
	>>"$tmp/log" 2>&1
ok $? "a C++ program calling os_malloc and os_free links and runs" "$tmp/log"
exit 0
