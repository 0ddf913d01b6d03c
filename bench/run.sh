#!/bin/sh
# run.sh - runs every benchmark workload with every allocator at hand and
# publishes the medians as a Markdown report and an SVG chart.
#
#   sh bench/run.sh [DIR]      DIR holds bench-osmem and bench-libc
#                              (default: the build's bench/ as make bench
#                              passes it, else the current directory)
#
# Allocators: libosmem (bench-osmem), glibc (bench-libc as it is), and
# jemalloc, mimalloc and tcmalloc (bench-libc with LD_PRELOAD) when their
# Debian libraries are installed (bench/install-peers.sh installs them).
# Each repetition runs every workload once with every allocator, in an
# order that rotates from one repetition to the next, so that noise on the
# machine is spread over all of them; the report gives medians.  Then
# bench/apps.sh times real programs with the same allocators (with the
# build's drop-in library, DIR/../.libs/libosmem-malloc.so, for libosmem),
# and the report has those too.
#
# Environment:
#   BENCH_RUNS        repetitions (default 5)
#   BENCH_WORKLOADS   the workloads to run (default: all, see --list)
#   BENCH_ALLOCATORS  the allocators to try (default:
#                     "glibc osmem jemalloc mimalloc tcmalloc")
#   BENCH_SCALE       multiplies every operation count (default 1)
#   BENCH_STRACE      0 to skip counting system calls under strace
#   BENCH_TIMEOUT     seconds before one run is given up (default 300)
#   BENCH_OUT         where latest.md and latest.svg go
#                     (default: results/ beside this script)
#   BENCH_RAW         file for every run's line (default: a temporary file)
#   BENCH_COMMAND     how this run was started, for the report
#   BENCH_APPS        0 to leave out the real programs; BENCH_APPS_RUNS,
#                     BENCH_APPS_LIST and BENCH_APPS_SCALE: see apps.sh
#
# Needs only a POSIX shell and awk.  SPDX-License-Identifier: MIT
set -u
LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd)
me=run.sh
bindir=${1:-.}
runs=${BENCH_RUNS:-5}
out=${BENCH_OUT:-$here/results}
want_allocs=${BENCH_ALLOCATORS:-glibc osmem jemalloc mimalloc tcmalloc}
timeout_s=${BENCH_TIMEOUT:-300}
osmem_prog=$bindir/bench-osmem
libc_prog=$bindir/bench-libc

die() { echo "run.sh: $*" >&2; exit 1; }
note() { echo "$*" >&2; }

for p in "$osmem_prog" "$libc_prog"; do
	test -x "$p" || die "no $p: build it with 'make bench' (or 'make bench-programs')"
done
case $runs in
	''|*[!0-9]*|0) die "BENCH_RUNS must be a positive whole number" ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/osmem-bench.XXXXXX") || die "cannot make a temporary directory"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
raw=${BENCH_RAW:-$work/raw.txt}
: >"$raw" || die "cannot write $raw"

# ---------------------------------------------------------------------------
# Which allocators are here.

. "$here/common.sh"
find_allocators "$want_allocs"

workloads=${BENCH_WORKLOADS:-$("$libc_prog" --list | cut -f1)}
"$libc_prog" --list >"$work/units" || die "$libc_prog --list failed"

have_timeout=no
command -v timeout >/dev/null 2>&1 && have_timeout=yes

# Runs workload $2 with allocator $1 (and, with $3, under "strace ... $3"
# writing to $4); prints the program's line, or fails with a reason on
# standard error.
run_one() {
	a=$1 w=$2
	err=$work/err
	case $a in
		osmem) set -- "$osmem_prog" "$w"; pre= ;;
		glibc) set -- "$libc_prog" "$w"; pre= ;;
		*) set -- "$libc_prog" "$w"; eval "pre=\$lib_$a" ;;
	esac
	if test "$have_timeout" = yes; then
		set -- timeout "$timeout_s" "$@"
	fi
	if test -n "$pre"; then
		line=$(LD_PRELOAD=$pre "$@" 2>"$err")
	else
		line=$("$@" 2>"$err")
	fi
	rc=$?
	if test $rc -ne 0; then
		reason=$(head -n 1 "$err")
		test $rc -eq 124 && reason="timed out after ${timeout_s}s"
		echo "exit status $rc${reason:+: $reason}" >&2
		return 1
	fi
	case $line in
		*ns_per_op=*) ;;
		*) echo "no result line" >&2; return 1 ;;
	esac
	# The program names the file its malloc came from: check that the
	# preload took effect, so that glibc is never reported as another.
	case $a:$line in
		osmem:*|glibc:*malloc_from=libc.*) ;;
		jemalloc:*malloc_from=*jemalloc*|mimalloc:*malloc_from=*mimalloc*) ;;
		tcmalloc:*malloc_from=*tcmalloc*) ;;
		*) echo "malloc did not come from $a (${line##*malloc_from=})" >&2; return 1 ;;
	esac
	echo "$line"
}

nw=$(echo $workloads | wc -w)
na=$(echo $allocs | wc -w)
note "run.sh: $runs repetitions of $nw workloads with$allocs ($((runs * nw * na)) runs)"
started=$(date +%s)
# Other work on the machine shows in the times; the report says how much.
load_start=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null)

rep=1
while test $rep -le "$runs"; do
	for w in $workloads; do
		progress="[$rep/$runs] $w:"
		for a in $(rotated $rep); do
			if line=$(run_one "$a" "$w" 2>"$work/why"); then
				echo "rep=$rep alloc=$a $line" >>"$raw"
				ns=${line#*ns_per_op=}
				progress="$progress $a=${ns%% *}"
			else
				why=$(cat "$work/why")
				echo "rep=$rep alloc=$a workload=$w failed=1 why=$why" | tr -s ' \t' '  ' >>"$raw"
				progress="$progress $a=FAILED"
				note "run.sh: $w with $a failed: $why"
			fi
		done
		note "$progress"
	done
	rep=$((rep + 1))
done

# ---------------------------------------------------------------------------
# Memory system calls: one more run of each under strace, counting.

syscalls=brk,mmap,munmap,mremap,madvise
: >"$work/syscalls"
if test "${BENCH_STRACE:-1}" != 0 && command -v strace >/dev/null 2>&1 &&
   strace -f -qq -o /dev/null true 2>/dev/null; then
	bpf=
	strace -f -qq --seccomp-bpf -o /dev/null -e trace=brk true 2>/dev/null && bpf=--seccomp-bpf
	note "run.sh: counting $syscalls under strace"
	for w in $workloads; do
		for a in $allocs; do
			case $a in
				osmem) prog=$osmem_prog; env= ;;
				glibc) prog=$libc_prog; env= ;;
				*) prog=$libc_prog; eval "env=-ELD_PRELOAD=\$lib_$a" ;;
			esac
			if strace -f -qq $bpf -c -o "$work/strace.out" -e trace=$syscalls $env \
			        "$prog" "$w" >/dev/null 2>&1; then
				n=$(awk '$NF == "total" { print $4 }' "$work/strace.out")
				echo "$w $a ${n:-0}" >>"$work/syscalls"
			fi
		done
		# And libosmem without its cache of freed mappings, to show
		# what the cache saves.
		case " $allocs " in
		*" osmem "*)
			if strace -f -qq $bpf -c -o "$work/strace.out" -e trace=$syscalls \
			        -E OSMEM_MAP_CACHE=0 "$osmem_prog" "$w" >/dev/null 2>&1; then
				n=$(awk '$NF == "total" { print $4 }' "$work/strace.out")
				echo "$w osmem-nocache ${n:-0}" >>"$work/syscalls"
			fi ;;
		esac
	done
else
	note "run.sh: not counting system calls (no working strace, or BENCH_STRACE=0)"
fi
elapsed=$(( $(date +%s) - started ))
load_end=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null)

# ---------------------------------------------------------------------------
# Real programs, with as many repetitions as the workloads unless told.

: >"$work/apps"
if test "${BENCH_APPS:-1}" != 0; then
	BENCH_APPS_FACTS=$work/apps BENCH_APPS_RUNS=${BENCH_APPS_RUNS:-$runs} \
	BENCH_ALLOCATORS=$allocs BENCH_TIMEOUT=$timeout_s \
		sh "$here/apps.sh" "$bindir/.." ||
		note "run.sh: bench/apps.sh failed; the report leaves the programs out"
else
	note "run.sh: BENCH_APPS=0: no real programs"
fi

# ---------------------------------------------------------------------------
# Medians: one line per workload and allocator,
#   workload alloc runs failures ns_median ns_min ns_max rss_median
#   ratio_median ops peak_live speedup_median
# with "-" for what is missing.  The speedup is the median over the
# repetitions of glibc's time / the allocator's time in that repetition:
# runs next to each other see the same load on the machine.

awk "$bench_awk_functions"'
{
	k = val("workload") SUBSEP val("alloc")
	if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
	if (val("failed") != "") { fails[k]++; why[k] = val("why"); next }
	ns[k] = ns[k] " " val("ns_per_op")
	at[k, val("rep")] = val("ns_per_op")
	reps[val("rep")] = 1
	rss[k] = rss[k] " " val("peak_rss_kib")
	if (val("rss_per_live") != "") ratio[k] = ratio[k] " " val("rss_per_live")
	if (val("peak_live_kib") != "") live[k] = val("peak_live_kib")
	ops[k] = val("ops")
	n[k]++
}
END {
	for (i = 1; i <= nk; i++) {
		k = order[i]; split(k, p, SUBSEP)
		g = p[1] SUBSEP "glibc"
		sp = ""
		for (r in reps)
			if ((k, r) in at && (g, r) in at && at[k, r] > 0)
				sp = sp " " at[g, r] / at[k, r]
		printf "%s %s %d %d %s %s %s %s %s %s %s %s\n", p[1], p[2], n[k], fails[k] + 0,
			median(ns[k]), extreme(ns[k], 0), extreme(ns[k], 1), median(rss[k]),
			median(ratio[k]), (ops[k] == "" ? "-" : ops[k]), (k in live ? live[k] : "-"),
			median(sp)
	}
}' "$raw" >"$work/summary"

# ---------------------------------------------------------------------------
# The report.

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -n 1)
libc_version=$(getconf GNU_LIBC_VERSION 2>/dev/null || ldd --version 2>/dev/null | head -n 1)
commit=$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null) || commit=
if test -n "$commit"; then
	changed=$(git -C "$here/.." status --porcelain -- src include 2>/dev/null | wc -l)
	test "$changed" -gt 0 && commit="$commit, with uncommitted changes to $changed file(s) in src/ or include/"
else
	commit="not a git checkout"
fi
command=${BENCH_COMMAND:-sh bench/run.sh}
envs=
for v in BENCH_RUNS BENCH_WORKLOADS BENCH_ALLOCATORS BENCH_SCALE BENCH_STRACE \
	BENCH_APPS BENCH_APPS_RUNS BENCH_APPS_LIST BENCH_APPS_SCALE; do
	eval "x=\${$v-}"
	test -n "$x" && envs="$envs$v='$x' "
done
config=
if test -f "$bindir/../config.status"; then
	config="$(cd "$here/.." && pwd)/configure $(sh "$bindir/../config.status" --config 2>/dev/null)"
fi

{
	echo "machine nproc $(nproc 2>/dev/null || echo ?)"
	echo "machine cpu ${cpu:-unknown}"
	echo "machine kernel $(uname -sr)"
	echo "machine libc $libc_version"
	echo "machine date $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "machine commit $commit"
	echo "machine command $envs$command"
	echo "machine configure ${config:-(unknown)}"
	echo "machine runs $runs"
	echo "machine elapsed $elapsed"
	echo "machine load ${load_start:-?} ${load_end:-?}"
	echo "machine strace $(test -s "$work/syscalls" && echo yes || echo no)"
	for a in $allocs; do
		case $a in
			glibc) echo "alloc glibc $libc_version: the system malloc, bench-libc as built" ;;
			osmem) echo "alloc osmem bench-osmem, linked statically with libosmem's objects: direct calls, no PLT" ;;
			*) eval "lib=\$lib_$a"
			   echo "alloc $a $(lib_package "$lib"): bench-libc with LD_PRELOAD=$lib" ;;
		esac
	done
	sed 's/^/unit /' "$work/units" | tr '\t' ' '
	sed 's/^/summary /' "$work/summary"
	sed 's/^/syscalls /' "$work/syscalls"
	grep ' failed=1 ' "$raw" | sed 's/^/failure /'
	cat "$work/apps"
} >"$work/facts"

# What the project asks of libosmem: a minimum speedup over glibc, for
# fragmentation a peak RSS per live byte no worse than glibc's, and for
# every workload a peak RSS at most 1.25 times glibc's.  (The targets for
# real programs come with apps.sh's results.)
cat >"$work/targets" <<'EOF'
target pairs-16 speed 1.5
target pairs-64 speed 1.5
target pairs-1k speed 1.5
target pairs-4k speed 2.5
target pairs-256k speed 1
target batch speed 3.5
target burst speed 1
target threads-2 speed 4
target prodcons speed 5
target xfree-1 speed 1
target xfree speed 1
target calloc speed 1.3
target realloc-grow speed 1
target realloc-strings speed 1.5
target large speed 1
target large-xl speed 1
target frag memory glibc
target all rss 1.25
EOF

mkdir -p "$out" || die "cannot make $out"
awk -v want="$allocs" -f "$here/report.awk" -v mode=md "$work/targets" "$work/facts" >"$work/latest.md" ||
	die "the report could not be written"
awk -v want="$allocs" -f "$here/report.awk" -v mode=svg "$work/targets" "$work/facts" >"$work/latest.svg" ||
	die "the chart could not be drawn"
cp "$work/latest.md" "$out/latest.md" && cp "$work/latest.svg" "$out/latest.svg" ||
	die "cannot write to $out"
cat "$work/latest.md"
note "run.sh: wrote $out/latest.md and $out/latest.svg ($(( $(date +%s) - started ))s in all)"
