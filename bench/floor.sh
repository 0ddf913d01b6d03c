#!/bin/sh
# floor.sh - the prodcons workload with an allocator that does no work
# (floor.c) beside glibc, libosmem and the installed peers, interleaved:
# how far any allocator could go on this machine.
#
#   sh bench/floor.sh [DIR]
#
# DIR holds bench-osmem and bench-libc (default bench, as in a build
# directory after 'make bench-programs').  floor.c is compiled with $CC
# (default cc) into a temporary directory.  Each allocator runs
# BENCH_RUNS times (default 9), the order rotating between repetitions;
# the report gives every time, the median, and glibc's median time
# divided by each one.  BENCH_PLACE places the two threads of every run:
# "one" confines them to CPU 0 (taskset), where they take turns, as in the
# runs where glibc is fast; "two" puts the consumer on CPU 0 and the
# producer on CPU 1 (pin.c, preloaded), where they run at once; unset, the
# kernel decides, as in make bench (see bench/README.md).
# SPDX-License-Identifier: MIT
set -eu

me=floor.sh
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-bench}
runs=${BENCH_RUNS:-9}
note() { echo "$*" >&2; }
die() { echo "$me: $*" >&2; exit 1; }
. "$here/common.sh"

for p in "$dir/bench-osmem" "$dir/bench-libc"; do
	test -x "$p" || die "no $p; run 'make bench-programs' first"
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/osmem-floor.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -O2 -fno-builtin -shared -fPIC -o "$tmp/libfloor.so" "$here/floor.c" ||
	die "cannot compile floor.c"
pin=
case ${BENCH_PLACE:-} in
	'') ;;
	one) command -v taskset >/dev/null 2>&1 || die "BENCH_PLACE=one needs taskset (util-linux)" ;;
	two) test "$(nproc)" -ge 2 || die "BENCH_PLACE=two needs 2 CPUs"
	     ${CC:-cc} -O2 -shared -fPIC -o "$tmp/libpin.so" "$here/pin.c" -ldl ||
		die "cannot compile pin.c"
	     pin=$tmp/libpin.so ;;
	*) die "BENCH_PLACE is one or two" ;;
esac

find_allocators "glibc osmem jemalloc mimalloc tcmalloc"
allocs="$allocs floor"
lib_floor=$tmp/libfloor.so

# One run of prodcons with allocator $1; prints its time a block in ns.
one() {
	lib=
	case $1 in
		glibc) set -- "$dir/bench-libc" ;;
		osmem) set -- "$dir/bench-osmem" ;;
		*) eval "lib=\$lib_$1"; set -- "$dir/bench-libc" ;;
	esac
	preload=$pin${pin:+${lib:+ }}$lib
	test -n "$preload" && set -- env "LD_PRELOAD=$preload" "$@"
	test "${BENCH_PLACE:-}" = one && set -- taskset -c 0 "$@"
	out=$("$@" prodcons) || die "prodcons failed: $*"
	echo "$out" | sed -n 's/.*ns_per_op=\([0-9.]*\).*/\1/p'
}

r=0
while test $r -lt "$runs"; do
	for a in $(rotated $r); do
		echo "$a $(one "$a")"
	done
	r=$((r + 1))
done >"$tmp/times"

case ${BENCH_PLACE:-} in
	one) where="both threads on CPU 0" ;;
	two) where="consumer on CPU 0, producer on CPU 1" ;;
	*) where="threads placed by the kernel" ;;
esac
echo "prodcons, ns a block, $runs runs each, interleaved ($(nproc) CPUs; $where)"
for a in $allocs; do
	sort -n -k2 "$tmp/times" | awk -v a="$a" '$1 == a { t[n++] = $2 }
		END { m = n % 2 ? t[(n - 1) / 2] : (t[n / 2 - 1] + t[n / 2]) / 2
		      s = ""; for (i = 0; i < n; i++) s = s " " t[i]
		      printf "%s %.1f %s\n", a, m, s }'
done | awk 'NR == 1 { base = $2 }
	{ printf "%-9s median %7.1f ns (glibc/this %5.2fx)  sorted:", $1, $2, base / $2
	  for (i = 3; i <= NF; i++) printf " %s", $i; printf "\n" }'
