#!/bin/sh
# t-dealloc.sh - mixing libosmem's blocks with the C library's is caught at
# compile time: with GCC 11 and later, osmem.h pairs every allocation
# function with os_free and os_realloc, and -Wall (-Wmismatched-dealloc)
# reports free(os_malloc(n)) and os_free(malloc(n)).  Correct code compiles
# with -Werror, so the pairing raises no false alarm.  A compiler without
# the attribute skips the points that need it.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}" "${CC:=cc}"
. "$top_srcdir/tests/tap.sh"

tmp=${TMPDIR:-/tmp}/t-dealloc.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99
echo "1..4"

inc=-I"$top_builddir/include"

# Does the compiler know the attribute, with a deallocator argument?
cat >"$tmp/probe.c" <<'END'
void my_free(void *p);
void *my_alloc(unsigned long n) __attribute__((__malloc__(my_free, 1)));
END
if $CC -Werror -c "$tmp/probe.c" -o "$tmp/probe.o" >/dev/null 2>&1; then
	paired=yes
else
	paired=no
fi

cat >"$tmp/good.c" <<'END'
#include <osmem.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
	char *p = os_malloc(16), *q = os_calloc(2, 8), *a = os_aligned_alloc(64, 64);
	char *r = os_realloc(p, 64);
	void *m = malloc(16);
	if (r)
		p = r;
	r = os_reallocarray(p, 4, 32);
	if (r)
		p = r;
	os_free(p);
	os_free(q);
	os_free(a);
	free(m);
	return 0;
}
END
$CC -std=gnu11 -Wall -Wextra -Werror $inc -c "$tmp/good.c" -o "$tmp/good.o" >"$tmp/log" 2>&1
ok $? "matched allocation and release compile with -Wall -Wextra -Werror" "$tmp/log"

# MISTAKE is a statement that frees P the wrong way.
mistake() {
	cat >"$tmp/bad.c" <<END
#include <osmem.h>
#include <stdlib.h>

int main(void)
{
	$1
	return 0;
}
END
	$CC -std=gnu11 -Wall $inc -c "$tmp/bad.c" -o "$tmp/bad.o" >"$tmp/log" 2>&1
	grep -q 'Wmismatched-dealloc' "$tmp/log"
}

for case in 'void *p = os_malloc(16); free(p);' 'void *p = malloc(16); os_free(p);' \
	'void *p = os_aligned_alloc(64, 64); void *q = realloc(p, 128); os_free(q);'; do
	if [ $paired = no ]; then
		skip "$CC does not pair allocation and release functions"
		continue
	fi
	mistake "$case"
	ok $? "-Wall warns about: $case" "$tmp/log"
done
