#!/bin/sh
# test.sh - run libosmem's whole test suite from a clean checkout:
# bootstrap, configure out of tree, build and make check.
#
# Usage: [BUILDDIR=_build/test] sh scripts/test.sh [configure options]
#
# Missing build tools are installed with apt-get when run as root; anyone
# else is shown the line to run.  The optional tools some tests use are
# installed the same way as root, and otherwise those tests are skipped.
# Exits non-zero when anything fails, after printing the test summary.
#
# SPDX-License-Identifier: MIT
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/build-deps.sh"
builddir=${BUILDDIR:-$top/_build/test}

# shellcheck disable=SC2086 # one requirement per word
osmem_need $osmem_build_reqs || exit 1
# shellcheck disable=SC2086
osmem_want $osmem_test_reqs
osmem_bootstrap "$top" || exit 1

mkdir -p "$builddir" && cd "$builddir" || exit 1
"$top/configure" "$@" || exit 1
jobs=$(osmem_jobs)
make -j"$jobs" || exit 1

rm -f test-suite.log
make -j"$jobs" check
status=$?
if [ $status -ne 0 ] && [ -f test-suite.log ]; then
	# The logs of the tests that did not pass.
	cat test-suite.log
fi
if [ -f test-suite.log ]; then
	echo "Test summary ($builddir/test-suite.log):"
	grep -E '^# (TOTAL|PASS|SKIP|XFAIL|FAIL|XPASS|ERROR):' test-suite.log
fi
if [ $status -ne 0 ]; then
	echo "make check failed (exit status $status)." >&2
fi
exit $status
