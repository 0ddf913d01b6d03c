#!/bin/sh
# t-strace.sh - the system calls libosmem makes, as strace sees them.
#
# tests/strace-prog makes a fixed sequence of allocations and writes a
# marker (a failing write to fd -1) between the steps.  Under strace the
# pattern must be:
#  - the first small requests: exactly one growth of the break, by at least
#    128 KiB, and no other memory system call;
#  - each large request: exactly one mmap, of at least the size asked for,
#    at the block's address; nothing else;
#  - each free of a large block: exactly one munmap of that mapping (with
#    OSMEM_MAP_CACHE=0: by default a few freed mappings are kept for reuse);
#  - a large realloc: exactly one mremap of that mapping, to at least the
#    new size, returning the block's new address; nothing else.
# Skipped when strace is missing or cannot trace here (ptrace refused).
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}"
LC_ALL=C
export LC_ALL

prog=$top_builddir/tests/strace-prog
tmp=${TMPDIR:-/tmp}/t-strace.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99

if [ -z "$STRACE" ]; then
	echo "1..0 # SKIP strace was not found by configure"
	exit 0
fi
if ! "$STRACE" -o "$tmp/probe" true >/dev/null 2>&1; then
	echo "1..0 # SKIP strace cannot trace here (ptrace not permitted?)"
	exit 0
fi
if [ ! -x "$prog" ]; then
	echo "Bail out! $prog was not built"
	exit 1
fi

# Without the cache of freed mappings, so that every free is an munmap.
# LeakSanitizer (in sanitizer builds) cannot run under ptrace.
ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 OSMEM_MAP_CACHE=0 "$STRACE" -f -s 256 -o "$tmp/trace" -e trace=brk,mmap,munmap,mremap,write \
	"$prog"
status=$?

awk -v status="$status" '
function hex(s,    i, c, v) {
	s = tolower(s)
	sub(/^0x/, "", s)
	v = 0
	for (i = 1; i <= length(s); i++) {
		c = index("0123456789abcdef", substr(s, i, 1)) - 1
		if (c < 0)
			return -1
		v = v * 16 + c
	}
	return v
}
# Addresses are above 2^31: some awks would print them as "1.4e+14" when
# they are used as array subscripts, so subscripts are made explicitly.
function key(x) {
	return sprintf("%.0f", x)
}
function result(line,    r) {
	r = line
	sub(/.*\) += /, "", r)
	sub(/ .*/, "", r)
	return r
}
function args(line,    a) {
	a = line
	sub(/^[a-z_]+\(/, "", a)
	sub(/\) += .*/, "", a)
	gsub(/ /, "", a)
	return a
}
function event(kind, addr, len, res) {
	if (!m)
		return
	cnt[m, kind]++
	cnt[m, "any"]++
	if (cnt[m, kind] == 1) {
		ev_addr[m, kind] = addr
		ev_len[m, kind] = len
		ev_res[m, kind] = res
	}
}
{ sub(/^[0-9]+ +/, "") }
/^write\(-1, "osmem-marker / {
	s = $0
	sub(/^write\(-1, "osmem-marker /, "", s)
	sub(/".*/, "", s)
	split(s, f, " ")
	m++
	name[m] = f[1]
	p[m] = hex(substr(f[2], 3))
	n[m] = hex(substr(f[3], 3))
	next
}
/^brk\(/ {
	r = hex(result($0))
	if (cur != "" && r != cur)
		event("brk", cur, r - cur, r)
	cur = r
	next
}
/^mmap\(/ {
	split(args($0), a, ",")
	event("mmap", a[1], a[2] + 0, hex(result($0)))
	next
}
/^munmap\(/ {
	split(args($0), a, ",")
	event("munmap", hex(a[1]), a[2] + 0, result($0))
	next
}
/^mremap\(/ {
	split(args($0), a, ",")
	event("mremap", hex(a[1]), a[3] + 0, hex(result($0)))
	oldlen[m] = a[2] + 0
	next
}
function ok(cond, msg) {
	t++
	print (cond ? "ok " : "not ok ") t " - " msg
}
function others(k, kind) {
	return cnt[k, "any"] - cnt[k, kind]
}
END {
	ok(status == 0, "strace-prog ran under strace and exited with status 0 (" status ")")
	for (k = 1; k <= m; k++) {
		if (name[k] == "small-start") {
			ok(cnt[k, "brk"] == 1 && ev_len[k, "brk"] >= 131072,
			   n[k] " small requests: one growth of the break (" (cnt[k, "brk"] + 0) \
			   " seen, by " (ev_len[k, "brk"] + 0) " bytes; at least 131072)")
			ok(others(k, "brk") == 0,
			   "and no mmap, munmap or mremap (" others(k, "brk") " seen)")
		} else if (name[k] == "large-alloc") {
			got = k + 1
			ok(cnt[k, "mmap"] == 1 && others(k, "mmap") == 0,
			   "os_malloc(" n[k] "): exactly one mmap and nothing else (" (cnt[k, "mmap"] + 0) \
			   " mmap, " others(k, "mmap") " other)")
			ok(cnt[k, "mmap"] == 1 && ev_len[k, "mmap"] >= n[k] && \
			   ev_res[k, "mmap"] == p[got] - 16,
			   "the mapping is " (ev_len[k, "mmap"] + 0) " bytes (at least " n[k] \
			   ") and holds the block right after its header")
			maplen[key(p[got])] = ev_len[k, "mmap"]
		} else if (name[k] == "large-free") {
			ok(cnt[k, "munmap"] == 1 && others(k, "munmap") == 0 && \
			   ev_addr[k, "munmap"] == p[k] - 16 && \
			   (!(key(p[k]) in maplen) || ev_len[k, "munmap"] == maplen[key(p[k])]),
			   "os_free of the " n[k] "-byte block: exactly one munmap, of its whole " \
			   "mapping (" (cnt[k, "munmap"] + 0) " munmap, " others(k, "munmap") " other)")
		} else if (name[k] == "realloc") {
			got = k + 1
			ok(cnt[k, "mremap"] == 1 && others(k, "mremap") == 0,
			   "os_realloc to " n[k] " bytes: exactly one mremap and nothing else (" \
			   cnt[k, "mremap"] " mremap, " others(k, "mremap") " other)")
			ok(cnt[k, "mremap"] == 1 && ev_addr[k, "mremap"] == p[k] - 16 && \
			   oldlen[k] == maplen[key(p[k])] && ev_len[k, "mremap"] >= n[k] && \
			   ev_res[k, "mremap"] == p[got] - 16,
			   "it moved the block'"'"'s mapping (" oldlen[k] " bytes) to " \
			   ev_len[k, "mremap"] " bytes, where the block now is")
			maplen[key(p[got])] = ev_len[k, "mremap"]
		}
	}
	ok(m == 17 && name[m] == "end", "all " m " markers seen, the last one at the end")
	print "1.." t
}' "$tmp/trace"
