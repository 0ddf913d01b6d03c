#!/bin/sh
# apps.sh - times real programs with each allocator as their malloc, and
# measures their peak resident size, against the same programs with glibc.
#
#   sh bench/apps.sh [BUILDDIR]     BUILDDIR: the top of a configured and
#                                   built tree (default: the current
#                                   directory)
#
# bench/run.sh runs this after the micro-benchmarks (so make bench does)
# and puts its results in the same report; run alone, it prints its part
# of the report in Markdown.
#
# The programs, each left out with a note when it is not installed:
#   python3   bench/apps-work.py with PYTHONMALLOC=malloc: dicts, lists,
#             strings and JSON, 120000 records
#   sqlite3   an in-memory database: a table of 10^6 rows built, indexed
#             twice and queried
#   sort      10^7 generated lines
#   gcc       gcc -O2 -c of libosmem's own sources (a copy of src/*.c
#             taken at the start, with the build's config.h)
#   xz        xz -6 of 4 MB of generated text
# The allocators: glibc (the programs as they are), libosmem (the build's
# .libs/libosmem-malloc.so with LD_PRELOAD), and jemalloc, mimalloc and
# tcmalloc with LD_PRELOAD when they are installed.  The preloaded library
# reaches every process a program starts (gcc's cc1 and as, for one).
# Each repetition runs every program once with every allocator, in an
# order that rotates between repetitions; the inputs are made, and every
# program run once with glibc to check it works and to fix its expected
# output, before the first timed run.  A run whose output differs from
# glibc's counts as failed.  Time is wall-clock; peak RSS is GNU time's
# %M, the largest resident size of any one process of the program.
#
# Environment:
#   BENCH_APPS        0 to run nothing
#   BENCH_APPS_RUNS   repetitions (default BENCH_RUNS, else 5)
#   BENCH_APPS_LIST   the programs to run (default: all of the above)
#   BENCH_APPS_SCALE  multiplies every input size (default 1; 0.1 for a
#                     quick trial)
#   BENCH_APPS_FACTS  write the results to this file for run.sh's report
#                     instead of printing a report
#   BENCH_ALLOCATORS  as for run.sh (default: all five)
#   BENCH_TIMEOUT     seconds before one run is given up (default 300)
#
# Needs a POSIX shell, awk, and GNU time as /usr/bin/time (Debian's
# package "time"; bench/install-peers.sh installs it).
# SPDX-License-Identifier: MIT
set -u
LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd)
me=apps.sh
srcdir=$(cd "$here/.." && pwd)

die() { echo "$me: $*" >&2; exit 1; }
note() { echo "$*" >&2; }

test "${BENCH_APPS:-1}" = 0 && { note "$me: BENCH_APPS=0: no programs run"; exit 0; }

top=$(cd "${1:-.}" && pwd) || die "no build directory ${1:-.}"
runs=${BENCH_APPS_RUNS:-${BENCH_RUNS:-5}}
scale=${BENCH_APPS_SCALE:-1}
want_apps=${BENCH_APPS_LIST:-python3 sqlite3 sort gcc xz}
want_allocs=${BENCH_ALLOCATORS:-glibc osmem jemalloc mimalloc tcmalloc}
timeout_s=${BENCH_TIMEOUT:-300}
facts=${BENCH_APPS_FACTS:-}
gnu_time=/usr/bin/time

case $runs in
	''|*[!0-9]*|0) die "BENCH_APPS_RUNS must be a positive whole number" ;;
esac
awk -v s="$scale" 'BEGIN { exit !(s + 0 > 0 && s == s + 0) }' ||
	die "BENCH_APPS_SCALE must be a positive number, not '$scale'"
for app in $want_apps; do
	case $app in
		python3|sqlite3|sort|gcc|xz) ;;
		*) die "no program '$app' (there are python3 sqlite3 sort gcc xz)" ;;
	esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/osmem-apps.XXXXXX") || die "cannot make a temporary directory"
# The commands are kept as lists of words.
case $work$here$top in
	*[[:space:]]*) rm -rf "$work"; die "the source, build and temporary directories must not have spaces in their names" ;;
esac
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
: >"$work/notes"
: >"$work/raw"

# A note that goes into the report as well as to standard error.
report_note() {
	note "$me: $*"
	echo "appnote $*" >>"$work/notes"
}

# Writes what was gathered to BENCH_APPS_FACTS for run.sh, or, run alone,
# prints the report's section on it.
finish() {
	{
		# What libosmem is to meet on every program.
		echo "target programs speed 1"
		echo "target programs rss 1.25"
		echo "appmachine runs $runs"
		echo "appmachine scale $scale"
		echo "appmachine elapsed ${elapsed:-0}"
		cat "$work/notes"
		test -f "$work/facts" && cat "$work/facts"
	} >"$work/all"
	if test -n "$facts"; then
		cp "$work/all" "$facts" || die "cannot write $facts"
	else
		: >"$work/none"
		awk -v mode=apps -v want="$allocs" -f "$here/report.awk" "$work/none" "$work/all"
	fi
}

# ---------------------------------------------------------------------------
# The allocators, and a check that each library really is preloaded.

. "$here/common.sh"
find_allocators "$want_allocs"

case " $allocs " in
*" osmem "*)
	lib_osmem=$top/.libs/libosmem-malloc.so
	if ! test -f "$lib_osmem"; then
		report_note "libosmem left out: no $lib_osmem (run make in $top; a build configured with --disable-shared has none)"
		allocs=$(echo " $allocs " | sed 's/ osmem / /')
	fi ;;
esac

# ld.so only warns, and goes on without it, when a library cannot be
# preloaded: that would time glibc under another name.  bench-libc, where
# it was built, also names the library its malloc came from.
checked=
for a in $allocs; do
	test "$a" = glibc && { checked="$checked $a"; continue; }
	eval "lib=\$lib_$a"
	why=$(env LD_PRELOAD="$lib" /bin/true 2>&1)
	if test -z "$why" && test -x "$top/bench/bench-libc"; then
		line=$(env LD_PRELOAD="$lib" "$top/bench/bench-libc" noop 2>&1)
		case $line in
			*malloc_from=libc.*) why="malloc still came from glibc" ;;
			*malloc_from=*) ;;
			*) why="bench-libc noop failed: $line" ;;
		esac
	fi
	if test -n "$why"; then
		report_note "$a left out: $lib does not take effect with LD_PRELOAD ($(echo "$why" | head -n 1))"
		continue
	fi
	checked="$checked $a"
done
allocs=$checked

if ! { test -x "$gnu_time" && "$gnu_time" -f %M -o /dev/null /bin/true 2>/dev/null; }; then
	report_note "no program was run: GNU time is not installed as $gnu_time (apt-get install time)"
	elapsed=0
	finish
	exit 0
fi
have_timeout=no
command -v timeout >/dev/null 2>&1 && have_timeout=yes
# date +%N is GNU's; elsewhere the times come from GNU time, in 1/100 s.
case $(date +%N) in
	''|*[!0-9]*) ns_clock=no ;;
	*) ns_clock=yes ;;
esac

# ---------------------------------------------------------------------------
# The inputs, and a first run of each program with glibc.

# N scaled by BENCH_APPS_SCALE, never below 1.
scaled() {
	awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s); print (v < 1 ? 1 : v) }'
}

# The generators use the "minimal standard" generator x = x * 48271 mod
# (2^31 - 1), whose products stay exact in any awk's doubles, so that every
# machine makes the same input.
make_lines() {
	awk -v n="$1" 'BEGIN {
		nw = split("amber basil cedar delta ember fjord glade heron iris jasper " \
			"kelp lotus maple nectar olive pearl quartz raven sage thyme", w, " ")
		x = 20240613
		for (i = 0; i < n; i++) {
			x = (x * 48271) % 2147483647
			printf "%s %010d\n", w[x % nw + 1], x
		}
	}'
}

make_text() {
	awk -v bytes="$1" 'BEGIN {
		nw = split("the of and to in is that for it as with was on be by at this " \
			"from or an are not have which but all were when we there can more if " \
			"some time will up out about so them these would other into has her two " \
			"like him see could no my than been who its now people only memory block " \
			"free heap page thread size list", w, " ")
		x = 777
		for (done = 0; done < bytes; done += length(line) + 1) {
			line = ""
			m = 6 + done % 9
			for (j = 0; j < m; j++) {
				x = (x * 48271) % 2147483647
				line = line w[x % nw + 1] " "
			}
			line = line (x % 100000)
			print line
		}
	}'
}

make_sql() {
	cat <<EOF
CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER NOT NULL, name TEXT NOT NULL, v REAL NOT NULL);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1)
INSERT INTO t SELECT x, (x * 7919) % 100003, printf('name-%07d', (x * 104729) % 1000003), x * 0.5 FROM c;
COMMIT;
CREATE INDEX t_k ON t(k);
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(v) FROM t WHERE k BETWEEN 1000 AND 2000;
SELECT k, count(*) FROM t GROUP BY k ORDER BY 2 DESC, 1 LIMIT 3;
SELECT name FROM t ORDER BY name LIMIT 3 OFFSET $(($1 / 2));
SELECT count(DISTINCT name) FROM t;
SELECT a.id, b.id FROM t a JOIN t b ON b.k = a.k AND b.id > a.id WHERE a.id <= 1000 ORDER BY 1, 2 LIMIT 3;
UPDATE t SET name = name || '-x' WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
SELECT count(*), max(name) FROM t;
EOF
}

# Sets what one run of program $1 needs: the command (cmd_$1, words
# without spaces), its standard input (in_$1) and a line for the report;
# returns 1, with a note, when the program is not here.  run_app reads
# cmd_$1 and in_$1 through eval.
# shellcheck disable=SC2034
setup() {
	eval "in_$1=/dev/null"
	case $1 in
	python3)
		py=/usr/bin/python3
		# The system's Python rather than a wrapper script in PATH, so
		# that only Python itself is timed.
		test -x "$py" || py=$(command -v python3) ||
			{ report_note "python3 left out: not installed (apt-get install python3)"; return 1; }
		n=$(scaled 120000)
		cmd_python3="env PYTHONMALLOC=malloc $py $here/apps-work.py $n"
		unit="PYTHONMALLOC=malloc python3 apps-work.py $n: dicts, lists, JSON" ;;
	sqlite3)
		command -v sqlite3 >/dev/null 2>&1 ||
			{ report_note "sqlite3 left out: not installed (apt-get install sqlite3)"; return 1; }
		n=$(scaled 1000000)
		make_sql "$n" >"$work/in.sql" ||
			{ report_note "sqlite3 left out: cannot write its input in $work"; return 1; }
		in_sqlite3=$work/in.sql
		cmd_sqlite3="sqlite3 -batch :memory:"
		unit="sqlite3 :memory:, $n rows inserted, 2 indexes, queries, updates" ;;
	sort)
		n=$(scaled 10000000)
		make_lines "$n" >"$work/lines.txt" ||
			{ report_note "sort left out: cannot write its input in $work"; return 1; }
		cmd_sort="sort $work/lines.txt"
		unit="sort of $n lines" ;;
	gcc)
		command -v gcc >/dev/null 2>&1 ||
			{ report_note "gcc left out: not installed"; return 1; }
		test -f "$top/config.h" ||
			{ report_note "gcc left out: no config.h in $top"; return 1; }
		# A copy, so that every run compiles the same text even while
		# the sources are being edited.
		mkdir -p "$work/gcc/src" "$work/gcc/include" "$work/gcc/build" &&
		cp "$srcdir"/src/*.c "$srcdir"/src/*.h "$work/gcc/src/" &&
		cp "$top"/include/osmem.h "$work/gcc/include/" &&
		cp "$top/config.h" "$work/gcc/build/" ||
			{ report_note "gcc left out: cannot copy the sources from $srcdir"; return 1; }
		cmd_gcc="gcc -O2 -pthread -DHAVE_CONFIG_H -I$work/gcc/build -I$work/gcc/include -I$work/gcc/src -c"
		n=0
		for f in "$work/gcc/src/"*.c; do
			cmd_gcc="$cmd_gcc $f"
			n=$((n + 1))
		done
		unit="gcc -O2 -c of libosmem's $n .c files" ;;
	xz)
		command -v xz >/dev/null 2>&1 ||
			{ report_note "xz left out: not installed (apt-get install xz-utils)"; return 1; }
		n=$(scaled 4000000)
		make_text "$n" >"$work/text.txt" ||
			{ report_note "xz left out: cannot write its input in $work"; return 1; }
		cmd_xz="xz -6 -T1 -c $work/text.txt"
		unit="xz -6 -T1 of $n bytes of text" ;;
	esac
	echo "appunit $1 $unit" >>"$work/facts"
}

# Runs program $2 once with allocator $1.  Leaves the time in ns in
# $took, the peak RSS in KiB in $kib and the output's checksum in $sum, or
# fails with the reason in $why.
run_app() {
	why="cannot make $work/run"
	pre=
	test "$1" = glibc || eval "pre=\$lib_$1"
	eval "cmd=\$cmd_$2 input=\$in_$2"
	is_gcc=no
	test "$2" = gcc && is_gcc=yes
	rm -rf "$work/run" && mkdir "$work/run" || return 1
	# shellcheck disable=SC2086 # the command is words without spaces
	set -- $cmd
	test -n "$pre" && set -- env "LD_PRELOAD=$pre" "$@"
	test "$have_timeout" = yes && set -- timeout "$timeout_s" "$@"
	t0=$(date +%s%N)
	(cd "$work/run" && exec "$gnu_time" -f '%e %M' -o "$work/time" "$@" \
		<"$input" >"$work/out" 2>"$work/err")
	rc=$?
	t1=$(date +%s%N)
	why=
	if test $rc -ne 0; then
		why="exit status $rc"
		test $rc -eq 124 && why="timed out after ${timeout_s}s"
		msg=$(grep -v '^Command exited with non-zero status' "$work/err" | head -n 1)
		test -n "$msg" && why="$why: $msg"
		return 1
	fi
	if grep 'cannot be preloaded' "$work/err" >/dev/null; then
		why="$(grep 'cannot be preloaded' "$work/err" | head -n 1)"
		return 1
	fi
	if test "$is_gcc" = yes; then
		# gcc prints nothing: what it made is the object files.
		objs=0
		for f in "$work/run/"*.o; do
			test -f "$f" && objs=$((objs + 1))
		done
		echo "$objs objects" >>"$work/out"
	fi
	sum=$(cksum <"$work/out")
	# GNU time's last line is "SECONDS KIB"; the line before it, if
	# any, is about the exit status.
	measured=$(tail -n 1 "$work/time")
	kib=${measured#* }
	if test "$ns_clock" = yes; then
		took=$((t1 - t0))
	else
		took=$(awk -v s="${measured%% *}" 'BEGIN { printf "%.0f", s * 1e9 }')
	fi
	return 0
}

started=$(date +%s)
apps=
for app in $want_apps; do
	note "$me: preparing $app"
	setup "$app" || continue
	if ! run_app glibc "$app"; then
		report_note "$app left out: it failed with glibc ($why)"
		continue
	fi
	eval "sum_$app=\$sum"
	apps="$apps $app"
done
test -n "$apps" || report_note "none of the programs could be run"

# ---------------------------------------------------------------------------
# The runs.

na=$(echo "$allocs" | wc -w)
np=$(echo "$apps" | wc -w)
test -n "$apps" &&
	note "$me: $runs repetitions of $np programs with$allocs ($((runs * np * na)) runs)"
rep=1
while test -n "$apps" && test $rep -le "$runs"; do
	for app in $apps; do
		progress="[$rep/$runs] $app:"
		for a in $(rotated $rep); do
			if run_app "$a" "$app"; then
				eval "expected=\$sum_$app"
				if test "$sum" != "$expected"; then
					why="its output differs from glibc's"
				fi
			fi
			if test -z "$why"; then
				echo "rep=$rep app=$app alloc=$a ns=$took kib=$kib" >>"$work/raw"
				progress="$progress $a=$(awk -v t="$took" 'BEGIN { printf "%.2fs", t / 1e9 }')"
			else
				echo "rep=$rep app=$app alloc=$a failed=1" >>"$work/raw"
				echo "appfailure rep=$rep app=$app alloc=$a why=$why" | tr -s ' \t' '  ' >>"$work/facts"
				progress="$progress $a=FAILED"
				note "$me: $app with $a failed: $why"
			fi
		done
		note "$progress"
	done
	rep=$((rep + 1))
done
elapsed=$(( $(date +%s) - started ))

# ---------------------------------------------------------------------------
# Medians, one line per program and allocator:
#   appsummary APP ALLOC RUNS FAILURES NS_MEDIAN NS_MIN NS_MAX KIB_MEDIAN
#     SPEEDUP_MEDIAN RSS_RATIO_MEDIAN
# The speedup is the median over the repetitions of glibc's time / the
# allocator's in that repetition, the RSS ratio that of the allocator's
# peak RSS / glibc's; "-" where there is none.

for a in $allocs; do
	case $a in
		glibc) echo "appalloc glibc the programs as they are" ;;
		osmem) echo "appalloc osmem LD_PRELOAD=$lib_osmem" ;;
		*) eval "lib=\$lib_$a"
		   echo "appalloc $a $(lib_package "$lib"): LD_PRELOAD=$lib" ;;
	esac
done >>"$work/facts"

awk "$bench_awk_functions"'
{
	k = val("app") SUBSEP val("alloc")
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	if (val("failed") != "") { fails[k]++; next }
	ns[k] = ns[k] " " val("ns")
	kib[k] = kib[k] " " val("kib")
	t[k, val("rep")] = val("ns"); m[k, val("rep")] = val("kib")
	reps[val("rep")] = 1
	n[k]++
}
END {
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, p, SUBSEP)
		g = p[1] SUBSEP "glibc"
		sp = ""; rr = ""
		for (r in reps)
			if ((k, r) in t && (g, r) in t && t[k, r] > 0 && m[g, r] > 0) {
				sp = sp " " t[g, r] / t[k, r]
				rr = rr " " m[k, r] / m[g, r]
			}
		printf "appsummary %s %s %d %d %s %s %s %s %s %s\n", p[1], p[2], n[k], fails[k] + 0,
			median(ns[k]), extreme(ns[k], 0), extreme(ns[k], 1), median(kib[k]),
			median(sp), median(rr)
	}
}' "$work/raw" >>"$work/facts"

finish
