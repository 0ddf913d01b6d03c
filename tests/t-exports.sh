#!/bin/sh
# t-exports.sh - the shared and static libraries expose exactly the public
# interface.  The list of public names is read from osmem.h (made from
# include/osmem.h.in by configure), so a function added there is expected
# in the library with no change here.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}" "${CC:=cc}"
. "$top_srcdir/tests/tap.sh"
NM=${NM:-nm}

so=$top_builddir/.libs/libosmem.so
ar=$top_builddir/.libs/libosmem.a
header=$top_builddir/include/osmem.h
tmp=${TMPDIR:-/tmp}/t-exports.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99

if [ ! -f "$so" ] && [ ! -f "$ar" ]; then
	echo "1..0 # SKIP neither $so nor $ar was built"
	exit 0
fi
echo 1..8

# The public names: every os_ identifier the header declares, after the
# preprocessor has removed the comments.  Type names (struct os_x, typedefs,
# names ending in _t) are not symbols and are left out.
$CC -E -P -I"$top_builddir/include" "$header" >"$tmp/header.i" 2>"$tmp/cpp.err"
status=$?
tr '\n' ' ' <"$tmp/header.i" | tr ';{}' '\n\n\n' | grep -v 'typedef' |
	sed -E 's/(struct|union|enum)[[:space:]]+os_[A-Za-z0-9_]*//g' |
	tr -cs 'A-Za-z0-9_' '\n' | grep '^os_' | grep -v '_t$' | sort -u >"$tmp/public"
[ $status -eq 0 ] && [ -s "$tmp/public" ]
ok $? "osmem.h declares public names ($(tr '\n' ' ' <"$tmp/public"))"
[ $status -eq 0 ] || diag "$(cat "$tmp/cpp.err")"

if [ -f "$so" ]; then
	# Defined dynamic symbols of every kind, without version suffixes.
	exported_symbols "$so" "$tmp/exported"
	ok $? "nm -D lists the symbols of libosmem.so"
	[ -s "$tmp/exported.err" ] && diag "$(cat "$tmp/exported.err")"

	comm -23 "$tmp/exported" "$tmp/public" >"$tmp/extra"
	[ ! -s "$tmp/extra" ]
	ok $? "every exported symbol is declared in osmem.h"
	[ -s "$tmp/extra" ] && diag "exported but not in osmem.h:" "$(cat "$tmp/extra")"

	comm -13 "$tmp/exported" "$tmp/public" >"$tmp/missing"
	[ ! -s "$tmp/missing" ]
	ok $? "every name in osmem.h is exported"
	[ -s "$tmp/missing" ] && diag "in osmem.h but not exported:" "$(cat "$tmp/missing")"

	grep -v '^os_' "$tmp/exported" >"$tmp/badprefix"
	[ ! -s "$tmp/badprefix" ]
	ok $? "every exported symbol starts with os_"
	[ -s "$tmp/badprefix" ] && diag "exported without the os_ prefix:" "$(cat "$tmp/badprefix")"

	# The dynamic section: readelf where it exists, objdump otherwise.
	if command -v "${READELF:-readelf}" >/dev/null 2>&1; then
		"${READELF:-readelf}" -d "$so" >"$tmp/dynamic" 2>&1
		soname=$(sed -n 's/.*(SONAME).*\[\(.*\)\].*/\1/p' "$tmp/dynamic")
	else
		"${OBJDUMP:-objdump}" -p "$so" >"$tmp/dynamic" 2>&1
		soname=$(awk '$1 == "SONAME" { print $2 }' "$tmp/dynamic")
	fi
	# The SONAME changes only with an incompatible interface change, and
	# this test with it.
	[ "$soname" = libosmem.so.0 ]
	ok $? "SONAME is libosmem.so.0 (got '$soname')"

	! grep -Eq 'RPATH|RUNPATH' "$tmp/dynamic"
	ok $? "libosmem.so has no RPATH or RUNPATH"
	grep -Eq 'RPATH|RUNPATH' "$tmp/dynamic" && diag "$(grep -E 'RPATH|RUNPATH' "$tmp/dynamic")"
else
	for _ in 1 2 3 4 5 6; do skip "libosmem.so was not built"; done
fi

if [ -f "$ar" ]; then
	# Every global symbol an object in the archive defines, whatever its
	# visibility: in a static link hidden names clash like any other, so
	# even internal ones carry the osmem_ prefix.  The compiler's own
	# names are left out: __x86.get_pc_thunk.* on 32-bit x86, and the
	# indicators AddressSanitizer adds for globals (__odr_asan*,
	# ___asan_globals_registered).
	$NM -g --defined-only "$ar" >"$tmp/nm-ar" 2>"$tmp/nm.err"
	status=$?
	awk 'NF >= 3 { print $3 }' "$tmp/nm-ar" |
		grep -Ev '^(__x86\.get_pc_thunk\.|__odr_asan|___asan_globals_registered$)' |
		sort -u >"$tmp/globals"
	grep -Ev '^(os_|osmem_)' "$tmp/globals" >"$tmp/badglobals"
	[ $status -eq 0 ] && [ -s "$tmp/globals" ] && [ ! -s "$tmp/badglobals" ]
	ok $? "every global symbol in libosmem.a starts with os_ or osmem_"
	[ $status -eq 0 ] || diag "$(cat "$tmp/nm.err")"
	[ -s "$tmp/badglobals" ] && diag "global symbols without the prefix:" "$(cat "$tmp/badglobals")"
else
	skip "libosmem.a was not built"
fi

exit 0
