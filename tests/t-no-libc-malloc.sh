#!/bin/sh
# t-no-libc-malloc.sh - libosmem never calls the C library's allocator.
#
# An allocator that called malloc, calloc, realloc or free would recurse
# into itself when it replaces them (libosmem-malloc.so), and would share
# the C library's heap otherwise.  Neither library nor the static archive
# may have an undefined reference to any function of the malloc family (or
# to functions that return malloc'd memory).  The list of undefined names
# is checked to contain the system calls libosmem does use, so an empty or
# unreadable listing cannot pass for a clean one.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}"
. "$top_srcdir/tests/tap.sh"
NM=${NM:-nm}

so=$top_builddir/.libs/libosmem.so
ar=$top_builddir/.libs/libosmem.a
preload=$top_builddir/.libs/libosmem-malloc.so
tmp=${TMPDIR:-/tmp}/t-no-libc-malloc.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99

forbidden='malloc calloc realloc free reallocarray posix_memalign aligned_alloc
memalign valloc pvalloc cfree malloc_usable_size strdup strndup asprintf
vasprintf __libc_malloc __libc_calloc __libc_realloc __libc_free
__libc_memalign'
# What libosmem does call, so the listing is known to be real.
needed='sbrk mmap munmap'

files=
for f in "$so" "$ar" "$preload"; do
	[ -f "$f" ] && files="$files $f"
done
if [ -z "$files" ]; then
	echo "1..0 # SKIP no library was built"
	exit 0
fi

count=0
for f in $files; do
	count=$((count + 2))
done
echo "1..$count"

for f in $files; do
	name=${f##*/}
	case $f in
	*.so) $NM -D --undefined-only "$f" >"$tmp/nm" 2>"$tmp/err" ;;
	*) $NM --undefined-only "$f" >"$tmp/nm" 2>"$tmp/err" ;;
	esac
	status=$?
	# The last field of each line is the name; drop symbol versions.
	awk 'NF { n = $NF; sub(/@.*/, "", n); print n }' "$tmp/nm" | sort -u >"$tmp/undef"
	missing=
	for s in $needed; do
		grep -qx "$s" "$tmp/undef" || missing="$missing $s"
	done
	[ $status -eq 0 ] && [ -z "$missing" ]
	ok $? "nm lists the undefined symbols of $name, among them$(printf ' %s' $needed)"
	[ $status -eq 0 ] || diag "$(cat "$tmp/err")"
	[ -n "$missing" ] && diag "not found in the listing:$missing"

	bad=
	for s in $forbidden; do
		grep -qx "$s" "$tmp/undef" && bad="$bad $s"
	done
	[ -z "$bad" ]
	ok $? "$name has no undefined reference to the C library's allocator"
	[ -n "$bad" ] && diag "$name refers to:$bad"
done
exit 0
