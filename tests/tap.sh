# tap.sh - Test Anything Protocol output for the shell tests; each of them
# sources it.  The counterpart of tap.h for the C tests.
#
# SPDX-License-Identifier: MIT

LC_ALL=C
export LC_ALL

n=0

# ok STATUS DESCRIPTION [LOGFILE]: one test point, passed when STATUS is 0.
# A failed point shows LOGFILE, when given and not empty, as diagnostics.
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		echo "not ok $n - $2"
		[ -n "${3-}" ] && [ -s "$3" ] && sed 's/^/# /' "$3"
	fi
	return 0
}

# skip REASON [COUNT]: COUNT test points (one by default) skipped.
skip() {
	_tap_i=0
	while [ "$_tap_i" -lt "${2:-1}" ]; do
		n=$((n + 1))
		_tap_i=$((_tap_i + 1))
		echo "ok $n # SKIP $1"
	done
}

# diag LINE...: lines of commentary.
diag() { printf '%s\n' "$@" | sed 's/^/# /'; }

# exported_symbols LIBRARY OUTPUT: the names LIBRARY's dynamic symbol table
# defines, without version suffixes or the ones the linker makes itself,
# sorted, into OUTPUT; nm's complaints go to OUTPUT.err.  Fails when nm
# fails or lists nothing.
exported_symbols() {
	${NM:-nm} -D --defined-only "$1" >"$2.nm" 2>"$2.err" || return 1
	awk 'NF >= 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }' "$2.nm" |
		grep -Ev '^(_init|_fini|_edata|_end|_etext|__bss_start|__bss_start__|__bss_end__|_bss_end__|__end__)$' |
		sort -u >"$2"
	[ -s "$2" ]
}

# libosmem_link_flags DIR: the flags that link a program with the library
# built in DIR (a .libs directory), the shared one preferred; the archive
# needs the thread library besides.  Nothing when neither was built.
libosmem_link_flags() {
	if [ -f "$1/libosmem.so" ]; then
		echo "-L$1 -losmem"
	elif [ -f "$1/libosmem.a" ]; then
		echo "$1/libosmem.a -pthread"
	fi
}
