#!/bin/sh
# t-textbook.sh - the allocator without thread caches: with
# OSMEM_CACHE_MAX=0 every free coalesces at once, the textbook best-fit
# heap, and the tests of best fit, splitting, coalescing, growth and the
# break must pass in that mode as well as in the default one.  One point
# per test program, run whole in that mode.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}"
. "$top_srcdir/tests/tap.sh"

programs='t-malloc t-calloc t-realloc t-aligned t-heap t-brk t-growth t-random t-mapcache t-kept'
set -- $programs
echo "1..$#"

tmp=${TMPDIR:-/tmp}/t-textbook.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99

for p; do
	prog=$top_builddir/tests/$p
	if [ ! -x "$prog" ]; then
		skip "$p was not built"
		continue
	fi
	OSMEM_CACHE_MAX=0 "$prog" >"$tmp/out" 2>&1
	status=$?
	failed=$(grep -c '^not ok' "$tmp/out")
	passed=$(grep -c '^ok' "$tmp/out")
	grep '^not ok' "$tmp/out" | head -20 >"$tmp/log"
	[ $status -eq 0 ] && [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
	ok $? "$p passes with OSMEM_CACHE_MAX=0 ($passed points, $failed failed, exit status $status)" \
		"$tmp/log"
done
