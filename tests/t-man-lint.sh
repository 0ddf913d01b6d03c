#!/bin/sh
# t-man-lint.sh - the manual pages are clean for both formatters people use:
# mandoc's linter and man-db (groff) with its warnings on.  Each .so alias
# must lead to a page that exists, and the example program of every page
# that has one must compile as printed and print what the page says it
# prints.
#
# Pages made from a .in are looked for in the build tree, the others in
# the source tree.  A check whose tool is missing is skipped, never passed.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}" "${CC:=cc}"
. "$top_srcdir/tests/tap.sh"
# Keep a reader's settings from changing what man does here.
unset MANOPT MANPATH MANSECT MANROFFOPT GROFF_TMAC_PATH
MAN_DISABLE_SECCOMP=1
export MAN_DISABLE_SECCOMP

abs_top_builddir=$(cd "$top_builddir" && pwd) || exit 99
abs_top_srcdir=$(cd "$top_srcdir" && pwd) || exit 99
sections="1 3"
tmp=${TMPDIR:-/tmp}/t-man-lint.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99
for sec in $sections; do
	mkdir "$tmp/man$sec" || exit 99
done

# An alias is a page whose only line, apart from comments, is ".so PAGE".
alias_target() { # alias_target FILE: prints PAGE, fails if not an alias
	sed -e '/^[.'\'']\\"/d' -e '/^[[:space:]]*$/d' "$1" | {
		read -r first rest || exit 1
		read -r more && exit 1
		[ "$first" = .so ] && [ -n "$rest" ] || exit 1
		printf '%s\n' "$rest"
	}
}

# Sort the pages out: NAME.N.in gives a generated page in the build tree;
# a NAME.N in the source tree is an alias or a page of its own (or, in a
# build inside the source tree, a generated page already counted).
generated= real= aliases=
for sec in $sections; do
	for in in "$abs_top_srcdir/man/man$sec"/*.$sec.in; do
		[ -f "$in" ] || continue
		page=$abs_top_builddir/man/man$sec/$(basename "$in" .in)
		generated="$generated $page"
		real="$real $page"
	done
	for f in "$abs_top_srcdir/man/man$sec"/*.$sec; do
		[ -f "$f" ] || continue
		[ -f "$f.in" ] && continue
		if alias_target "$f" >/dev/null; then
			aliases="$aliases $f"
		else
			real="$real $f"
		fi
	done
done
# A page's place in the staging tree: manN/NAME.N.
staged() { echo "man${1##*.}/$(basename "$1")"; }
count() { set -- $1; echo $#; }
nreal=$(count "$real")
nalias=$(count "$aliases")
if [ "$nreal" -eq 0 ]; then
	echo "Bail out! no manual pages found in $abs_top_srcdir/man"
	exit 99
fi

# Every page, real or alias, in one tree of manN directories, so that
# ".so manN/PAGE" resolves from $tmp as it does from an installed mandir.
for f in $real $aliases; do
	[ -f "$f" ] && cp "$f" "$tmp/$(staged "$f")"
done

have_mandoc=false
if [ -n "$MANDOC" ] && [ -x "$MANDOC" ]; then have_mandoc=true; fi
# man --warnings is man-db's (it runs groff with warnings on); the man of
# mandoc and others have no such option.
have_man=false man_missing="man not installed"
if [ -n "$MAN" ] && [ -x "$MAN" ]; then
	if "$MAN" --version 2>/dev/null | grep -q '^man [0-9]'; then
		have_man=true
	else
		man_missing="$MAN is not man-db's man"
	fi
fi
# man-db picks its output device from the locale: UTF-8 where there is one,
# as on most readers' systems.
man_locale=C
if locale -a 2>/dev/null | grep -qi '^c\.utf-*8$'; then man_locale=C.UTF-8; fi

# The pages with an example program: its source is marked SRC BEGIN.
examples=
for page in $real; do
	[ -f "$page" ] && grep -q '^\.\\" SRC BEGIN' "$page" &&
		examples="$examples $page"
done
nexamples=$(count "$examples")

echo "1..$((1 + 2 * nreal + 3 * nalias + 2 * nexamples))"

# 1: configure's values were substituted into every generated page.
status=0
for page in $generated; do
	if [ ! -f "$page" ]; then
		diag "$page was not built"
		status=1
	elif grep -n '@[A-Z_][A-Z_]*@' "$page" >"$tmp/subst"; then
		diag "$page still has placeholders:"
		diag "$(cat "$tmp/subst")"
		status=1
	fi
done
ok $status "generated pages are built with no @PLACEHOLDER@ left"

mandoc_lint() { # mandoc_lint LEVEL manN/PAGE (run in $tmp)
	(cd "$tmp" && "$MANDOC" -T lint -W "$1" "$2") >"$tmp/out" 2>&1
	if [ -s "$tmp/out" ]; then
		diag "$(cat "$tmp/out")"
		return 1
	fi
}

man_warnings() { # man_warnings manN/PAGE (run in $tmp)
	(cd "$tmp" && LC_ALL=$man_locale MANWIDTH=80 \
		"$MAN" --warnings -l "$1" 2>"$tmp/out" >/dev/null)
	status=$?
	if [ -s "$tmp/out" ] || [ $status -ne 0 ]; then
		diag "man exited with $status"
		diag "$(cat "$tmp/out")"
		return 1
	fi
}

for page in $real; do
	name=$(basename "$page")
	if [ ! -f "$page" ]; then
		ok 1 "$name: mandoc -T lint -W warning (page missing)"
		ok 1 "$name: man --warnings (page missing)"
		continue
	fi
	if $have_mandoc; then
		mandoc_lint warning "$(staged "$page")"
		ok $? "$name: mandoc -T lint -W warning prints nothing"
	else
		skip "mandoc not installed"
	fi
	if $have_man; then
		man_warnings "$(staged "$page")"
		ok $? "$name: man --warnings prints nothing"
	else
		skip "$man_missing"
	fi
done

for f in $aliases; do
	name=$(basename "$f")
	target=$(alias_target "$f")
	test -f "$tmp/$target"
	ok $? "$name: .so $target names a page that is shipped"
	if $have_mandoc; then
		mandoc_lint error "$(staged "$f")"
		ok $? "$name: mandoc -T lint -W error prints nothing"
	else
		skip "mandoc not installed"
	fi
	if $have_man; then
		man_warnings "$(staged "$f")"
		ok $? "$name: man --warnings prints nothing"
	else
		skip "$man_missing"
	fi
done

# The examples, taken from each page as mandoc prints it: the program is
# the text of "Program source", and the shell session before it says
# which runs print what.  Each is built and run in a directory of its own.
libs=$abs_top_builddir/.libs
lib=$(libosmem_link_flags "$libs")
bs=$(printf '\b')
for page in $examples; do
	name=$(basename "$page")
	if ! $have_mandoc; then
		skip "mandoc not installed"
		skip "mandoc not installed"
		continue
	fi
	if [ -z "$lib" ]; then
		skip "libosmem was not built in $libs"
		skip "libosmem was not built in $libs"
		continue
	fi
	dir=$tmp/example.$name
	mkdir "$dir" || exit 99
	"$MANDOC" -T ascii -O width=200 "$tmp/$(staged "$page")" |
		sed "s/.$bs//g" >"$dir/page.txt"
	# The program: everything under "Program source", up to the next
	# section, without the indentation of the page.
	sed -n '/^ *Program source$/,/^[A-Z]/p' "$dir/page.txt" |
		sed -e '1d' -e '$d' -e 's/^       //' >"$dir/example.c"
	# The session: "$ ./a.out ARGS" lines and the output after each.
	sed -n '/^EXAMPLES$/,/^ *Program source$/p' "$dir/page.txt" |
		sed -n 's/^           //p' >"$dir/session"

	# Warnings count: the page promises a program that compiles cleanly.
	(cd "$dir" && $CC $OSMEM_SAN_CFLAGS -Wall -Wextra \
		-I"$abs_top_builddir/include" example.c $lib -o a.out) \
		>"$dir/cc.out" 2>&1
	status=$?
	if [ $status -ne 0 ] || [ -s "$dir/cc.out" ]; then
		diag "$(cat "$dir/cc.out")"
		status=1
	fi
	ok $status "$name: example compiles without warnings"

	status=0
	runs=0
	if [ ! -x "$dir/a.out" ]; then
		status=1
	else
		: >"$dir/want"
		args=
		flush() {
			[ -n "$args" ] || return 0
			runs=$((runs + 1))
			(cd "$dir" &&
				LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
				./a.out $args) >"$dir/got" 2>&1
			if ! cmp -s "$dir/want" "$dir/got"; then
				diag "./a.out $args printed:" "$(cat "$dir/got")" \
					"but the page shows:" "$(cat "$dir/want")"
				status=1
			fi
			: >"$dir/want"
			args=
		}
		while IFS= read -r line; do
			case $line in
			'$ ./a.out'*)
				flush
				args=${line#'$ ./a.out'}
				args=${args# } ;;
			'$ '*)
				flush ;;
			'')
				flush ;;
			*)
				[ -n "$args" ] && printf '%s\n' "$line" >>"$dir/want" ;;
			esac
		done <"$dir/session"
		flush
		[ $runs -gt 0 ] || { diag "no ./a.out run found on the page"; status=1; }
	fi
	ok $status "$name: example prints what the page shows ($runs runs)"
done
