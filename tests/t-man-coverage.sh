#!/bin/sh
# t-man-coverage.sh - every function the shared library exports has a
# manual page of its name (a page of its own or a .so alias), and the NAME
# section of the page it leads to lists the function, so that man, apropos
# and whatis all find it.
#
# The list of functions is read from the built libosmem.so: a function
# made public without a page fails here.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}"
. "$top_srcdir/tests/tap.sh"
NM=${NM:-nm}

so=$top_builddir/.libs/libosmem.so
if [ ! -f "$so" ]; then
	echo "1..0 # SKIP $so was not built (configured with --disable-shared?)"
	exit 0
fi

# Defined code symbols of the dynamic symbol table, without any version.
syms=$($NM -D --defined-only "$so" | awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' |
	sort -u)
if [ -z "$syms" ]; then
	echo "Bail out! $NM found no exported function in $so"
	exit 99
fi
set -- $syms
echo "1..$#"

# The file of page NAME.3: built from a .3.in, or shipped as it is.
page_file() {
	for f in "$top_builddir/man/man3/$1" "$top_srcdir/man/man3/$1" \
		"$top_srcdir/man/man3/$1.in"; do
		if [ -f "$f" ]; then
			printf '%s\n' "$f"
			return 0
		fi
	done
	return 1
}

# The words of the NAME section of FILE, one per line.
name_words() {
	sed -n '/^\.SH  *"*NAME"*$/,/^\.SH/p' "$1" | sed '1d;$d' |
		sed 's/\\-.*//' | tr -s ', ' '\n\n'
}

for sym; do
	desc="$sym has a manual page"
	if ! file=$(page_file "$sym.3"); then
		diag "no man/man3/$sym.3 or $sym.3.in in $top_srcdir or $top_builddir"
		ok 1 "$desc"
		continue
	fi
	# Follow a .so alias (one level, as man does).
	target=$(sed -n 's/^\.so  *//p' "$file" | head -n 1)
	if [ -n "$target" ]; then
		if ! file=$(page_file "$(basename "$target")"); then
			diag "$sym.3 is an alias of $target, which does not exist"
			ok 1 "$desc"
			continue
		fi
		desc="$desc ($sym.3 -> $(basename "$target"))"
	fi
	if ! name_words "$file" | grep -qx "$sym"; then
		diag "the NAME section of $file does not list $sym"
		ok 1 "$desc"
		continue
	fi
	ok 0 "$desc"
done
