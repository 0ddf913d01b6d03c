#!/bin/sh
# t-dropin.sh - libosmem as the malloc of programs that know nothing of it.
#
#  - libosmem-malloc.so exports the standard allocation names, the os_
#    interface and nothing else;
#  - osmem-run parses its arguments, reports a missing library, passes
#    the exit status, the arguments and the OSMEM_* settings through;
#  - real programs (python3 with PYTHONMALLOC=malloc, git, sqlite3, gcc,
#    sort) and tests/dropin-prog, each run once plainly and once under
#    osmem-run, exit the same way with the same output, and libosmem has
#    nothing to complain about.  Every run under osmem-run has OSMEM_STATS=1,
#    and its summary (peak bytes in use) shows that the work really went
#    through libosmem; sort, which closes standard error before the
#    summary can be written, shows it another way;
#  - memalign and aligned_alloc, called by tests/dropin-prog with
#    alignments such as 0 and 24, give what the C library gives.
# A program that is not installed is skipped, with the reason.
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}"
. "$top_srcdir/tests/tap.sh"
NM=${NM:-nm}

top_builddir=$(cd "$top_builddir" && pwd) || exit 99
top_srcdir=$(cd "$top_srcdir" && pwd) || exit 99
so=$top_builddir/.libs/libosmem-malloc.so
lib=$top_builddir/.libs/libosmem-malloc.so.0
run=$top_builddir/osmem-run
prog=$top_builddir/tests/dropin-prog

if [ ! -f "$so" ] || [ ! -f "$lib" ]; then
	echo "1..0 # SKIP libosmem-malloc.so was not built"
	exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t-dropin.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

echo 1..38

# ---------------------------------------------------------------------------
# The exported names.

standard='malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign
valloc pvalloc malloc_usable_size free_sized free_aligned_sized cfree
malloc_trim mallopt mallinfo2 mallinfo malloc_info malloc_stats'
printf '%s\n' $standard | sort -u >"$tmp/standard"

exported_symbols "$so" "$tmp/exported"
ok $? "nm -D lists the symbols of libosmem-malloc.so"
[ -s "$tmp/exported.err" ] && diag "$(cat "$tmp/exported.err")"

comm -23 "$tmp/standard" "$tmp/exported" >"$tmp/missing"
[ ! -s "$tmp/missing" ]
ok $? "libosmem-malloc.so exports every standard allocation function"
[ -s "$tmp/missing" ] && diag "not exported:" "$(cat "$tmp/missing")"

comm -13 "$tmp/standard" "$tmp/exported" | grep -v '^os_' >"$tmp/extra"
[ ! -s "$tmp/extra" ]
ok $? "libosmem-malloc.so exports nothing but those and os_ names"
[ -s "$tmp/extra" ] && diag "exported as well:" "$(cat "$tmp/extra")"

# ---------------------------------------------------------------------------
# osmem-run itself.

# Sanitized builds cannot be preloaded into programs without the
# sanitizer's runtime; only the parts that load nothing are checked.
can_preload=yes
[ -n "${OSMEM_SAN_CFLAGS:-}" ] && can_preload=no

OSMEM_PRELOAD_LIB=$lib
export OSMEM_PRELOAD_LIB
unset OSMEM_STATS OSMEM_CHECK OSMEM_MMAP_THRESHOLD OSMEM_TRIM_THRESHOLD OSMEM_TOP_PAD

"$run" >"$tmp/o" 2>"$tmp/e"
status=$?
[ $status -eq 2 ] && grep -q '^usage: osmem-run ' "$tmp/e" && [ ! -s "$tmp/o" ]
ok $? "osmem-run with no arguments exits 2 with a usage line on stderr (status $status)"

"$run" --help >"$tmp/o" 2>"$tmp/e"
status=$?
[ $status -eq 0 ] && grep -q '^usage: osmem-run ' "$tmp/o" && [ ! -s "$tmp/e" ]
ok $? "osmem-run --help exits 0 with the usage on stdout (status $status)"

OSMEM_PRELOAD_LIB=$tmp/no-such-lib.so "$run" true >"$tmp/o" 2>"$tmp/e"
status=$?
[ $status -eq 127 ] && grep -q "no-such-lib.so" "$tmp/e"
ok $? "osmem-run with a missing library exits 127 and names it (status $status)"
[ $status -eq 127 ] || diag "$(cat "$tmp/e")"

if [ $can_preload = yes ]; then
	"$run" sh -c 'exit 7'
	status=$?
	[ $status -eq 7 ]
	ok $? "osmem-run passes the program's exit status through (status $status)"

	out=$("$run" sh -c 'printf "[%s]" "$@"' sh "a b" "" '*' "\$x")
	[ "$out" = '[a b][][*][$x]' ]
	ok $? "osmem-run passes arguments through unchanged (got $out)"

	# The summary is printed by libosmem itself, so it proves both that
	# the library was loaded and that OSMEM_STATS reached it.  It comes
	# from a destructor, which needs a program that allocates, leaves
	# standard error open and ends with exit(), not _exit(): not true(1),
	# which never allocates, nor sh, which may use _exit().
	OSMEM_STATS=1 "$run" "$prog" --which >"$tmp/o" 2>"$tmp/stats"
	status=$?
	[ $status -eq 0 ] && grep -q '^osmem: in use [0-9]* bytes, peak [0-9]* bytes' "$tmp/stats" &&
		grep -q '^osmem: heap ' "$tmp/stats" && grep -q '^osmem: mapped ' "$tmp/stats"
	ok $? "OSMEM_STATS=1 osmem-run PROGRAM prints libosmem's summary on stderr"
	[ $status -eq 0 ] || diag "$(cat "$tmp/stats")"

	OSMEM_CHECK=9 "$run" "$prog" --which >"$tmp/o" 2>"$tmp/e"
	grep -q '^osmem: .*OSMEM_CHECK=9' "$tmp/e"
	ok $? "other OSMEM_* settings reach libosmem too (OSMEM_CHECK=9 is refused)"
else
	skip "sanitized build: libosmem-malloc.so cannot be preloaded" 4
fi

# ---------------------------------------------------------------------------
# Real programs, plainly and under osmem-run.

if command -v timeout >/dev/null 2>&1; then
	limit="timeout -k 10 240"
else
	limit=
fi

# run_pair NAME COMMAND [ARGUMENT...]: runs COMMAND twice at once, in
# directories $tmp/NAME.plain and $tmp/NAME.osmem, once plainly and once
# under osmem-run with OSMEM_STATS=1; NAME.{plain,osmem}.{out,err,rc} in
# $tmp hold what each did.
run_pair() {
	name=$1
	shift
	mkdir "$tmp/$name.plain" "$tmp/$name.osmem" || return
	(
		cd "$tmp/$name.plain" &&
			$limit "$@" >"$tmp/$name.plain.out" 2>"$tmp/$name.plain.err"
		echo $? >"$tmp/$name.plain.rc"
	) &
	(
		cd "$tmp/$name.osmem" &&
			OSMEM_STATS=1 $limit "$run" "$@" >"$tmp/$name.osmem.out" 2>"$tmp/$name.osmem.err"
		echo $? >"$tmp/$name.osmem.rc"
	) &
	wait
}

# The lines of libosmem's OSMEM_STATS summary, as patterns made from the
# one printed above (numbers stand for any number); anything else libosmem
# says is a complaint.
if [ -s "$tmp/stats" ]; then
	sed -n '/^osmem: /{
		s/[][\\.*^$()+?{}|]/\\&/g
		s/[0-9][0-9]*/[0-9]+/g
		s/^/^/
		s/$/$/
		p
	}' "$tmp/stats" | sort -u >"$tmp/summary"
else
	echo '^osmem: (heap|in use|free|cached|mapped) [0-9]' >"$tmp/summary"
fi

# check_pair NAME MIN_PEAK [FILTER]: four test points on the runs of
# run_pair (three when MIN_PEAK is "-").  FILTER (a sed script) removes
# lines of the output that may differ by design.
check_pair() {
	name=$1
	min_peak=$2
	filter=${3:-}
	p=$tmp/$name.plain
	o=$tmp/$name.osmem
	prc=$(cat "$p.rc")
	orc=$(cat "$o.rc")

	[ "$prc" = 0 ] && [ "$orc" = "$prc" ]
	ok $? "$name: exits with status 0 plainly and under osmem-run (got $prc and $orc)"
	if [ "$prc" != 0 ] || [ "$orc" != 0 ]; then
		diag "plain stderr:" "$(tail -n 5 "$p.err")" "osmem-run stderr:" \
			"$(grep -Ev -f "$tmp/summary" "$o.err" | tail -n 5)"
	fi

	# A program may send its children's standard error to its output,
	# and libosmem's summaries with it.
	sed -e "$filter" "$p.out" >"$p.cmp"
	grep -Ev -f "$tmp/summary" "$o.out" | sed -e "$filter" >"$o.cmp"
	grep -Ev -f "$tmp/summary" "$o.err" >"$o.err.cmp"
	cmp -s "$p.cmp" "$o.cmp" && cmp -s "$p.err" "$o.err.cmp" && [ -s "$p.cmp" ]
	ok $? "$name: the same output under osmem-run ($(wc -l <"$p.cmp") lines)"
	if ! cmp -s "$p.cmp" "$o.cmp" || ! cmp -s "$p.err" "$o.err.cmp"; then
		diag "$(diff "$p.cmp" "$o.cmp" | head -n 10)" "$(diff "$p.err" "$o.err.cmp" | head -n 10)"
	fi

	cat "$o.out" "$o.err" | grep '^osmem:' | grep -Ev -f "$tmp/summary" >"$o.complaints"
	[ ! -s "$o.complaints" ]
	ok $? "$name: libosmem has nothing to complain about"
	[ -s "$o.complaints" ] && diag "$(head -n 5 "$o.complaints")"

	# One summary per process that used the allocator; the busiest one
	# must have held at least MIN_PEAK bytes at once.
	[ "$min_peak" = - ] && return
	peak=$(sed -n 's/^osmem: in use [0-9]* bytes, peak \([0-9]*\) bytes.*/\1/p' "$o.out" "$o.err" |
		sort -n | tail -n 1)
	[ "${peak:-0}" -ge "$min_peak" ]
	ok $? "$name: the work went through libosmem (largest peak in use ${peak:-none}, want >= $min_peak)"
}

# want PROGRAM: true when PROGRAM is installed; else skips the 4 points.
want() {
	if [ $can_preload = no ]; then
		skip "$1: sanitized build: libosmem-malloc.so cannot be preloaded" 4
		return 1
	fi
	if ! command -v "$1" >/dev/null 2>&1; then
		skip "$1 is not installed" 4
		return 1
	fi
	return 0
}

MiB=1048576

# python3: every object from malloc.  A version manager's wrapper script
# would only add processes, so the interpreter itself is run.
if want python3; then
	py=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
	[ -x "$py" ] || py=python3
	(
		PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
		export PYTHONMALLOC PYTHONHASHSEED PYTHONDONTWRITEBYTECODE
		run_pair python3 "$py" "$top_srcdir/tests/dropin/py-work.py" 60000
	)
	check_pair python3 $((16 * MiB))
fi

# git: a repository of a few hundred files, three commits, gc and fsck.
# Dates, names and configuration are fixed, so every hash is too.
cat >"$tmp/git-work.sh" <<'EOF'
set -e
HOME=$PWD
GIT_CONFIG_NOSYSTEM=1
GIT_AUTHOR_NAME='A U Thor'
GIT_AUTHOR_EMAIL=author@example.org
GIT_COMMITTER_NAME='C O Mitter'
GIT_COMMITTER_EMAIL=committer@example.org
GIT_AUTHOR_DATE='2005-04-07T22:13:13Z'
GIT_COMMITTER_DATE='2005-04-07T22:13:13Z'
export HOME GIT_CONFIG_NOSYSTEM GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL
export GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL GIT_AUTHOR_DATE GIT_COMMITTER_DATE
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE GIT_OBJECT_DIRECTORY
git -c init.defaultBranch=main init -q repo
cd repo
git config user.name 'A U Thor'
git config user.email author@example.org
mkdir d0 d1 d2 d3 d4 d5 d6 d7 d8 d9
awk 'BEGIN { for (i = 0; i < 400; i++) {
	f = sprintf("d%d/file%03d.txt", i % 10, i)
	for (j = 0; j < 30 + i % 50; j++)
		printf "line %d of file %d: %d\n", j, i, (i * 7919 + j * 104729) % 1000003 > f
	close(f) } }'
git add -A
git commit -q -m 'first'
awk 'BEGIN { for (i = 0; i < 400; i += 7) {
	f = sprintf("d%d/file%03d.txt", i % 10, i)
	printf "appended to %d\n", i >> f
	close(f) } }'
git add -A
git commit -q -m 'second'
git rm -q d3/file*3.txt
git mv d1 moved
git commit -q -m 'third'
git gc -q --prune=now
git fsck --full --strict --no-progress 2>&1
git log --format='%H %T %s'
git cat-file --batch-all-objects --batch-check | sort
git count-objects -v | grep -E '^(count|in-pack|packs|garbage):'
EOF
if want git; then
	run_pair git sh "$tmp/git-work.sh"
	check_pair git $((1 * MiB))
fi

# sqlite3: 10^5 rows in one transaction, two indexes, changes, VACUUM.
awk 'BEGIN {
	print "BEGIN;"
	print "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT NOT NULL, grp INTEGER, val REAL, pad BLOB);"
	for (i = 1; i <= 100000; i++)
		printf "INSERT INTO t VALUES(%d, '\''n%08x-%d'\'', %d, %d.25, zeroblob(%d));\n",
			i, (i * 2654435761) % 4294967296, i % 977, i % 100, i * 3, i % 200
	print "COMMIT;"
	print "CREATE INDEX t_name ON t(name);"
	print "CREATE INDEX t_grp ON t(grp, val);"
	print "DELETE FROM t WHERE id % 3 = 0;"
	print "UPDATE t SET name = name || '\''-updated'\'' WHERE id % 5 = 0;"
	print "VACUUM;"
	print "PRAGMA integrity_check;"
	print "SELECT count(*), sum(length(name)), sum(grp), total(val), sum(length(pad)) FROM t;"
	print "SELECT grp, count(*), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 10;"
	print "SELECT name FROM t ORDER BY name LIMIT 5 OFFSET 5000;"
}' >"$tmp/work.sql"
if want sqlite3; then
	run_pair sqlite3 sh -c 'sqlite3 work.db <"$1"' sh "$tmp/work.sql"
	check_pair sqlite3 $((1 * MiB))
fi

# gcc: libosmem's own sources, optimised; the objects must be identical.
cat >"$tmp/gcc-work.sh" <<'EOF'
set -e
CCACHE_DISABLE=1
export CCACHE_DISABLE
gcc -O2 -Wall -Wextra -pthread -I"$1/src" -I"$2/include" -I"$2" -c "$1"/src/*.c
md5sum ./*.o
EOF
if want gcc; then
	run_pair gcc sh "$tmp/gcc-work.sh" "$top_srcdir" "$top_builddir"
	check_pair gcc $((1 * MiB))
fi

# sort: a million lines, with two threads where sort can use them.
awk 'BEGIN { x = 1; for (i = 0; i < 1000000; i++) {
	x = (x * 1103515245 + 12345) % 2147483648
	printf "%08x %d\n", x, i } }' >"$tmp/lines"
if sort --parallel=2 </dev/null >/dev/null 2>&1; then
	sort_opts=--parallel=2
else
	sort_opts=
fi
if want sort; then
	run_pair sort sh -c 'sort $1 -o sorted "$2" && md5sum <sorted && wc -l <sorted' \
		sh "$sort_opts" "$tmp/lines"
	check_pair sort -
	# sort closes standard error before it exits, so libosmem's summary
	# cannot be had; a setting libosmem refuses shows it is there.
	out=$(printf 'b\na\n' | OSMEM_CHECK=9 "$run" sort 2>"$tmp/e" | tr '\n' ' ')
	[ "$out" = 'a b ' ] && grep -q '^osmem: .*OSMEM_CHECK=9' "$tmp/e"
	ok $? "sort: its malloc is libosmem's (OSMEM_CHECK=9 is refused in sort)"
fi

# tests/dropin-prog: the C library's own allocating functions, threads,
# fork.  It says which allocator it found; that line and its comments
# are left out of the comparison and checked on their own.
if [ $can_preload = no ]; then
	skip "dropin-prog: sanitized build: libosmem-malloc.so cannot be preloaded" 8
elif [ ! -x "$prog" ]; then
	for i in 1 2 3 4 5 6 7 8; do ok 1 "tests/dropin-prog was not built"; done
else
	run_pair dropin-prog "$prog"
	check_pair dropin-prog $((4 * MiB)) '/^allocator: /d; /^# /d'
	grep -qx 'allocator: C library' "$tmp/dropin-prog.plain.out"
	ok $? "dropin-prog: finds the C library's malloc when run plainly"
	grep -qx 'allocator: libosmem' "$tmp/dropin-prog.osmem.out"
	ok $? "dropin-prog: finds libosmem serving malloc under osmem-run"
	# memalign and aligned_alloc with alignments of 0, 24 and the like:
	# what the C library gives, the drop-in library must give too.
	lenient='^(ok|FAIL) - as in the C library, '
	grep -E "$lenient" "$tmp/dropin-prog.plain.out" >"$tmp/lenient.plain"
	grep -E "$lenient" "$tmp/dropin-prog.osmem.out" >"$tmp/lenient.osmem"
	[ -s "$tmp/lenient.plain" ] && ! grep -q '^FAIL' "$tmp/lenient.plain"
	ok $? "dropin-prog: the C library's memalign and aligned_alloc take alignments such as 0 and 24 ($(wc -l <"$tmp/lenient.plain") calls)"
	cmp -s "$tmp/lenient.plain" "$tmp/lenient.osmem"
	ok $? "dropin-prog: memalign and aligned_alloc give the same answers under osmem-run"
	grep -E '^(FAIL|# )' "$tmp/dropin-prog.plain.out" "$tmp/dropin-prog.osmem.out" |
		head -n 20 | while IFS= read -r line; do diag "$line"; done
fi

exit 0
