# common.sh - what bench/run.sh and bench/apps.sh share: finding the
# allocators to compare, and the order to run them in.  Sourced, not run.
#
# The caller defines note() and die() and sets me to its own name, for
# messages.  SPDX-License-Identifier: MIT

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null) ||
	multiarch=$(${CC:-cc} -print-multiarch 2>/dev/null) || multiarch=
libdirs="/usr/lib /lib /usr/lib64 /usr/local/lib"
test -n "$multiarch" && libdirs="/usr/lib/$multiarch /lib/$multiarch $libdirs"

# The first of the file name patterns given that names a file in a library
# directory; the patterns are tried in order, the directories for each.
find_lib() {
	for pattern in "$@"; do
		for d in $libdirs; do
			for f in "$d"/$pattern; do
				test -f "$f" && { echo "$f"; return 0; }
			done
		done
	done
	return 1
}

# Sets allocs to those of the allocators named in $1 that are here, and
# lib_NAME to the library to preload for each peer (jemalloc, mimalloc,
# tcmalloc, from Debian's packages); glibc and osmem need no search here.
# Dies unless glibc, the baseline, is among them.
find_allocators() {
	allocs=
	for a in $1; do
		lib=
		case $a in
			glibc|osmem) ;;
			jemalloc) lib=$(find_lib libjemalloc.so.2 'libjemalloc.so.*') ;;
			mimalloc) lib=$(find_lib libmimalloc.so.2 'libmimalloc.so.2.*' 'libmimalloc.so.*') ;;
			tcmalloc) lib=$(find_lib libtcmalloc_minimal.so.4 libtcmalloc.so.4) ;;
			*) die "unknown allocator '$a'" ;;
		esac
		case $a in
			glibc|osmem) ;;
			*) if test -z "$lib"; then
				note "$me: $a is not installed; skipped (see bench/install-peers.sh)"
				continue
			   fi
			   eval "lib_$a=\$lib" ;;
		esac
		allocs="$allocs $a"
	done
	case " $allocs " in
		*" glibc "*) ;;
		*) die "glibc is the baseline and must be among BENCH_ALLOCATORS" ;;
	esac
}

# The allocators in $allocs in the order for repetition $1: rotated by one
# each time, so that no allocator always runs first, or after the same one.
rotated() {
	set -- $1 $allocs
	k=$(( $1 % ($# - 1) )); shift
	i=0
	for a in "$@"; do
		test $i -ge $k && printf '%s ' "$a"
		i=$((i + 1))
	done
	i=0
	for a in "$@"; do
		test $i -lt $k && printf '%s ' "$a"
		i=$((i + 1))
	done
}

# The Debian package and version that installed library $1, as
# "PACKAGE VERSION", with "?" for what dpkg cannot tell.
lib_package() {
	pkg=$(dpkg -S "$1" 2>/dev/null | head -n 1 | cut -d: -f1)
	ver=
	test -n "$pkg" && ver=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null)
	echo "${pkg:-?} ${ver:-?}"
}

# awk functions that both runners' summaries use, put in front of their
# programs: val(KEY) reads KEY=VALUE from the current line, median and
# extreme take a space-separated list of numbers.
bench_awk_functions='
function val(key,   i, n) {
	for (i = 1; i <= NF; i++) {
		n = index($i, "=")
		if (substr($i, 1, n - 1) == key) return substr($i, n + 1)
	}
	return ""
}
function median(list,   n, a, i, j, t) {
	n = split(list, a, " ")
	if (n == 0) return "-"
	for (i = 2; i <= n; i++)
		for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
	return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function extreme(list, want_max,   n, a, i, m) {
	n = split(list, a, " ")
	if (n == 0) return "-"
	m = a[1] + 0
	for (i = 2; i <= n; i++)
		if (want_max ? a[i] + 0 > m : a[i] + 0 < m) m = a[i] + 0
	return m
}
'
