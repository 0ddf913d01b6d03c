#!/bin/sh
# Builds libosmem and its tests with ThreadSanitizer in a build tree of
# their own and runs the multi-threaded tests; a reported data race fails
# them.  make check-tsan runs it.
#
#   tests/tsan.sh [BUILDDIR [TEST...]]
#
# BUILDDIR defaults to $TSAN_BUILDDIR or a directory under ${TMPDIR:-/tmp};
# CC defaults to clang.  TESTs default to every tests/t-*.c that starts
# threads.  Output is TAP, one point per program, then a counts line.
# TSAN_OPTIONS is passed on, after options that make the first report fail
# the program and keep the whole report.
#
# SPDX-License-Identifier: MIT
set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-${TSAN_BUILDDIR:-${TMPDIR:-/tmp}/osmem-tsan-build}}
test $# -gt 0 && shift
CC=${CC:-clang}
export CC

if ! echo 'int main(void) { return 0; }' | "$CC" -fsanitize=thread -x c -o /dev/null - \
	>/dev/null 2>&1; then
	echo "1..0 # SKIP $CC cannot build with -fsanitize=thread"
	exit 0
fi

if test $# -gt 0; then
	tests=$*
else
	tests=
	for f in "$srcdir"/tests/t-*.c; do
		grep -q pthread_create "$f" && tests="$tests $(basename "$f" .c)"
	done
fi

test -x "$srcdir/configure" || (cd "$srcdir" && ./autogen.sh) || exit 2
mkdir -p "$builddir" && cd "$builddir" || exit 2
flags="-fsanitize=thread -g -O1"
if ! test -f Makefile || ! grep -q -- '-fsanitize=thread' config.status 2>/dev/null; then
	"$srcdir/configure" CC="$CC" CFLAGS="$flags" LDFLAGS="-fsanitize=thread" \
		>configure.out 2>&1 || {
		cat configure.out >&2
		exit 2
	}
fi
progs=
for t in $tests; do progs="$progs tests/${t#tests/}"; done
# shellcheck disable=SC2086 # a list of programs
make -j"$(nproc 2>/dev/null || echo 2)" $progs >make.out 2>&1 || {
	cat make.out >&2
	exit 2
}

TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 history_size=4 ${TSAN_OPTIONS:-}"
export TSAN_OPTIONS
n=0
passed=0
failed=0
echo "1..$(echo $progs | wc -w)"
for p in $progs; do
	n=$((n + 1))
	log=$p.tsan.log
	if "./$p" >"$log" 2>&1; then
		echo "ok $n - ${p#tests/} under ThreadSanitizer"
		passed=$((passed + 1))
	else
		status=$?
		echo "not ok $n - ${p#tests/} under ThreadSanitizer (exit status $status, see $builddir/$log)"
		grep -E -A12 '^WARNING: ThreadSanitizer' "$log" | head -40 | sed 's/^/# /'
		grep -E '^not ok' "$log" | head -10 | sed 's/^/# /'
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
test "$failed" -eq 0
