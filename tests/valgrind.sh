#!/bin/sh
# Runs the C tests of a build tree under valgrind's memcheck, as TAP: one
# point per test program, passing when the program passed and valgrind
# found no error (--error-exitcode).  make check-valgrind runs it.
#
#   tests/valgrind.sh [BUILDDIR [TEST...]]
#
# BUILDDIR defaults to the current directory, which must hold built test
# programs (make check or make check_PROGRAMS).  Without TESTs, every
# tests/t-* program is run except those that cannot be judged under
# valgrind, each for a reason given as a SKIP:
#  - t-misuse: its cases die of SIGABRT on purpose, and valgrind adds its
#    own lines to the one line of standard error they are judged by;
#  - t-brk: it needs the C library's malloc to move the break, and
#    valgrind replaces that malloc with one that does not;
#  - t-growth: it limits the address space, which valgrind needs room in;
#  - t-threads: it asserts that most frees cross threads, and valgrind
#    runs one thread at a time, in long slices (t-race covers threads).
# The children that t-inspect starts are traced too.  The soak and race
# tests run fewer operations, as valgrind is some 50 times slower.
# tests/valgrind.supp names the reads memcheck flags that the allocator
# makes on purpose.  VALGRIND and VALGRIND_FLAGS override the command and
# add options.
#
# SPDX-License-Identifier: MIT
set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-.}
test $# -gt 0 && shift
VALGRIND=${VALGRIND:-valgrind}

if ! command -v "$VALGRIND" >/dev/null 2>&1; then
	echo "1..0 # SKIP valgrind is not installed"
	exit 0
fi

cd "$builddir" || exit 2
if test $# -gt 0; then
	tests=$*
else
	tests=$(ls tests/t-* 2>/dev/null | grep -v '\.' | sort)
fi

skip_reason() {
	case ${1##*/} in
	t-misuse) echo "death tests: valgrind adds lines to the report they are judged by" ;;
	t-brk) echo "needs the C library's malloc to move the break, which valgrind's does not" ;;
	t-growth) echo "limits the address space valgrind itself needs" ;;
	t-threads) echo "valgrind runs one thread at a time, so few frees cross threads" ;;
	t-reclaim) echo "limits the address space valgrind itself needs, and its 100 MiB workloads take minutes there" ;;
	*) echo "" ;;
	esac
}

OSMEM_SOAK_OPS=${OSMEM_SOAK_OPS:-100000}
OSMEM_RACE_ITERS=${OSMEM_RACE_ITERS:-10000}
export OSMEM_SOAK_OPS OSMEM_RACE_ITERS

n=0
passed=0
failed=0
count=$(echo $tests | wc -w)
echo "1..$count"
for t in $tests; do
	n=$((n + 1))
	name=${t##*/}
	why=$(skip_reason "$t")
	if test -n "$why" || ! test -x "$t"; then
		echo "ok $n - $name # SKIP ${why:-not built}"
		continue
	fi
	# A libtool wrapper script is run through libtool; real programs as is.
	run=
	if ! head -c 4 "$t" | grep -q ELF && test -x ./libtool; then
		run="./libtool --mode=execute"
	fi
	log=$t.valgrind.log
	children=no
	test "$name" = t-inspect && children=yes
	# shellcheck disable=SC2086 # $run and VALGRIND_FLAGS are lists
	if $run "$VALGRIND" -q --error-exitcode=99 --trace-children=$children \
		--child-silent-after-fork=yes --suppressions="$srcdir/tests/valgrind.supp" \
		${VALGRIND_FLAGS:-} "$t" >"$log" 2>&1; then
		echo "ok $n - $name under valgrind"
		passed=$((passed + 1))
	else
		status=$?
		echo "not ok $n - $name under valgrind (exit status $status, see $log)"
		grep -E '^(==[0-9]+==|not ok)' "$log" | head -20 | sed 's/^/# /'
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
test "$failed" -eq 0
