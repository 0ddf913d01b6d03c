#!/bin/sh
# callgrind.sh - counts the instructions one workload executes per
# operation with libosmem and with glibc, which is steadier than the
# wall-clock time on a busy machine, and shows where they go.
#
#   sh bench/callgrind.sh WORKLOAD [DIR]
#
# DIR holds bench-osmem and bench-libc (default bench, as in a build
# directory after 'make bench-programs').  Each program runs once under
# valgrind --tool=callgrind, and once more with the "noop" workload, whose
# count (starting the program and the allocator) is subtracted before
# dividing by the number of operations.  The count covers the whole
# workload, including any set-up it does not time.  A heap larger than
# valgrind lets the break grow (about 8 MiB) is partly mapped under
# valgrind, and frees in its older segment take the slow path: see
# bench/README.md.  Environment:
#   BENCH_SCALE     multiplies the operation counts (default 0.05: valgrind
#                   is some fifty times slower than the bare program)
#   CALLGRIND_TOP   how many functions to list (default 15)
#   CALLGRIND_DIR   keep the callgrind.out files there (for kcachegrind)
#
# SPDX-License-Identifier: MIT
set -eu

test $# -ge 1 || { echo "usage: $0 WORKLOAD [DIR]" >&2; exit 1; }
workload=$1
dir=${2:-bench}
top=${CALLGRIND_TOP:-15}
BENCH_SCALE=${BENCH_SCALE:-0.05}
export BENCH_SCALE

command -v valgrind >/dev/null 2>&1 ||
	{ echo "$0: valgrind is not installed (see bench/install-peers.sh)" >&2; exit 1; }
for p in "$dir/bench-osmem" "$dir/bench-libc"; do
	test -x "$p" || { echo "$0: no $p; run 'make bench-programs' first" >&2; exit 1; }
done
"$dir/bench-libc" --list | cut -f1 | grep -qx "$workload" ||
	{ echo "$0: no workload '$workload'; there are:" >&2; "$dir/bench-libc" --list >&2; exit 1; }

if test -n "${CALLGRIND_DIR:-}"; then
	keep=$CALLGRIND_DIR
	mkdir -p "$keep"
else
	keep=$(mktemp -d "${TMPDIR:-/tmp}/osmem-callgrind.XXXXXX")
	trap 'rm -rf "$keep"' EXIT
fi

# Runs program $1 with workload $2 under callgrind into file $3; prints the
# program's own line.
profile() {
	valgrind --tool=callgrind --callgrind-out-file="$3" "$1" "$2" 2>"$3.log" ||
		{ echo "$0: $1 $2 failed under valgrind:" >&2; tail -n 5 "$3.log" >&2; exit 1; }
}

# The total instruction count recorded in callgrind output file $1.
total_ir() {
	awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$1"
}

# The top functions of callgrind output file $1 by their own instructions.
# callgrind_annotate lists a function once per source file that code was
# inlined from; these are added up per function.
top_functions() {
	callgrind_annotate --inclusive=no --auto=no "$1" 2>/dev/null |
		awk '/^ *[0-9][0-9,]* / && /:/ && !/PROGRAM TOTALS/ {
			ir = $1; gsub(/,/, "", ir)
			f = $0; sub(/ \[[^]]*\]$/, "", f); sub(/.*:/, "", f)
			sum[f] += ir
		}
		END { for (f in sum) printf "%d %s\n", sum[f], f }' |
		sort -rn | head -n "$top" |
		awk -v total="$(total_ir "$1")" '{ printf "%14d %5.1f%%  %s\n", $1, 100 * $1 / total, $2 }'
}

echo "Instructions (Ir) per operation of '$workload', BENCH_SCALE=$BENCH_SCALE"
echo
for impl in osmem libc; do
	prog=$dir/bench-$impl
	out=$keep/callgrind.out.$impl.$workload
	line=$(profile "$prog" "$workload" "$out")
	profile "$prog" noop "$keep/callgrind.out.$impl.noop" >/dev/null
	ops=$(echo "$line" | sed -n 's/.* ops=\([0-9]*\).*/\1/p')
	ir=$(total_ir "$out")
	base=$(total_ir "$keep/callgrind.out.$impl.noop")
	name=$impl
	test "$impl" = libc && name=glibc
	awk -v n="$name" -v ir="$ir" -v base="$base" -v ops="$ops" 'BEGIN {
		printf "%-8s %14.0f Ir, %.0f of them at start-up, for %d operations: %.1f Ir per operation\n",
			n, ir, base, ops, (ir - base) / ops }'
	eval "ir_$impl=\$ir base_$impl=\$base ops_$impl=\$ops"
done
awk -v a="$ir_osmem" -v ab="$base_osmem" -v b="$ir_libc" -v bb="$base_libc" 'BEGIN {
	printf "libosmem executes %.2fx as many instructions as glibc per operation\n",
		(a - ab) / (b - bb) }'

for impl in osmem libc; do
	out=$keep/callgrind.out.$impl.$workload
	echo
	echo "== $impl: top $top functions by own instructions, of $(total_ir "$out") Ir in all =="
	top_functions "$out"
done
if test -n "${CALLGRIND_DIR:-}"; then
	echo
	echo "callgrind output kept in $keep"
fi
