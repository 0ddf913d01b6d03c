#!/bin/sh
# Builds the libFuzzer harness in a build tree of its own and runs it for
# a bounded time, for CI and for long runs by hand.
#
#   tests/fuzz/run.sh [SECONDS [BUILDDIR]]
#
# SECONDS defaults to 60; BUILDDIR to $FUZZ_BUILDDIR or a directory under
# ${TMPDIR:-/tmp}.  CC defaults to clang.  FUZZ_JOBS runs that many fuzzer
# processes in parallel; FUZZ_FLAGS adds libFuzzer options.  The corpus is
# a copy of tests/fuzz/corpus in the build tree, so the source tree is
# never written to; crashing inputs are left in BUILDDIR/tests/fuzz/.
# The exit status is the fuzzer's (0 when it found nothing).
#
# SPDX-License-Identifier: MIT
set -eu

seconds=${1:-60}
srcdir=$(cd "$(dirname "$0")/../.." && pwd)
builddir=${2:-${FUZZ_BUILDDIR:-${TMPDIR:-/tmp}/osmem-fuzz-build}}
CC=${CC:-clang}
export CC

case $seconds in
	''|*[!0-9]*) echo "run.sh: SECONDS must be a number, not '$seconds'" >&2; exit 2 ;;
esac

if ! "$CC" -fsanitize=fuzzer -x c -o /dev/null - >/dev/null 2>&1 <<'EOF'
int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);
int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }
EOF
then
	echo "run.sh: $CC cannot build a libFuzzer program (install clang)" >&2
	exit 2
fi

test -x "$srcdir/configure" || (cd "$srcdir" && ./autogen.sh)

mkdir -p "$builddir"
cd "$builddir"
if ! test -f Makefile || ! grep -q -- '--enable-fuzzing' config.status 2>/dev/null; then
	"$srcdir/configure" --enable-fuzzing CC="$CC" >configure.out 2>&1 || {
		cat configure.out >&2
		exit 2
	}
fi
make -j"$(nproc 2>/dev/null || echo 2)" tests/fuzz/fuzz-ops >make.out 2>&1 || {
	cat make.out >&2
	exit 2
}

rm -rf tests/fuzz/corpus.run
mkdir -p tests/fuzz/corpus.run
cp "$srcdir"/tests/fuzz/corpus/* tests/fuzz/corpus.run/

jobs=${FUZZ_JOBS:-1}
echo "run.sh: fuzzing for ${seconds}s with $jobs job(s) in $builddir"
status=0
# shellcheck disable=SC2086 # FUZZ_FLAGS is a list of options
./tests/fuzz/fuzz-ops -max_total_time="$seconds" -print_final_stats=1 \
	-artifact_prefix=tests/fuzz/ ${FUZZ_FLAGS:-} \
	$(test "$jobs" -gt 1 && echo "-fork=$jobs") \
	tests/fuzz/corpus.run || status=$?
exit "$status"
