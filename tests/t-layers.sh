#!/bin/sh
# t-layers.sh - the core depends one way, checked where it really happens.
#
# libosmem's sources form layers.  A file may include only headers of its
# own layer and the layers below, and an object may use only functions and
# data defined in its own layer or below.  The order, top first:
#
#   entry     the public functions, the drop-in names, inspection
#             (os_mallinfo, os_heap_check), what is done before ENOMEM,
#             and the start-up that reaches every layer (fork handlers)
#   thread    the calling thread's cache of blocks and its arena
#   heap      the best-fit heap: carve, split, coalesce, resize, trim
#   bins      size classes and their free lists, the top
#   segments  the memory the heap lives in: brk growth, mapped segments
#   large     blocks in mappings of their own, and the freed-mapping cache
#   base      chunk layout, locks, system calls, clearing, the one fatal path,
#             settings and counters
#
# The map below names the layer of every source file; a header belongs to
# the layer of the file of the same name, and internal.h, chunk.h and
# lock.h to the base.  A file missing from the map fails the test, so that
# a new file has to say where it stands.
#
# The symbols are read with nm from the objects of the build, so what is
# checked is what the compiler really made of the sources (an inline
# function that calls up shows, one that is never used does not).
#
# SPDX-License-Identifier: MIT

: "${top_builddir:=.}" "${top_srcdir:=.}"
. "$top_srcdir/tests/tap.sh"
NM=${NM:-nm}

layers='entry thread heap bins segments large base'

layer_of_file() {
	case $1 in
	osmem | aligned | override | stats | walk | reclaim | init | version | control | info) echo entry ;;
	cache | arena) echo thread ;;
	heap | heapwalk | ledger) echo heap ;;
	bins) echo bins ;;
	segment) echo segments ;;
	mapped | mapcache) echo large ;;
	os | check | clear | options | settings | internal | chunk | lock) echo base ;;
	*) echo unknown ;;
	esac
}

# The rank of a layer: 0 at the top.
rank() {
	_r=0
	for _l in $layers; do
		[ "$_l" = "$1" ] && { echo $_r; return; }
		_r=$((_r + 1))
	done
	echo 99
}

tmp=${TMPDIR:-/tmp}/t-layers.$$
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp" || exit 99

objs=
for o in "$top_builddir"/src/libosmem_core_la-*.o "$top_builddir"/src/libosmem_malloc_la-*.o; do
	[ -f "$o" ] && objs="$objs $o"
done
if [ -z "$objs" ]; then
	echo "1..0 # SKIP the library's objects are not in $top_builddir/src"
	exit 0
fi

name_of() {
	_f=${1##*/}
	_f=${_f#libosmem_core_la-}
	_f=${_f#libosmem_malloc_la-}
	echo "${_f%.o}"
}

# Every symbol an object defines, with the object's name.
for o in $objs; do
	obj=$(name_of "$o")
	$NM -g --defined-only "$o" | awk -v f="$obj" 'NF >= 3 { print $3, f }'
done | sort -u >"$tmp/defs"

sources=$(cd "$top_srcdir/src" && ls ./*.c ./*.h | sed 's|^\./||')
set -- $sources
objcount=$(echo $objs | wc -w)
echo "1..$(($# + objcount))"

# Includes.
for f in $sources; do
	base=${f%.*}
	mine=$(layer_of_file "$base")
	bad=
	if [ "$mine" = unknown ]; then
		diag "src/$f is in no layer: add it to the map in tests/t-layers.sh"
		bad=yes
	fi
	for h in $(sed -n 's/^#[[:space:]]*include[[:space:]]*"\([a-z_]*\)\.h".*/\1/p' "$top_srcdir/src/$f"); do
		theirs=$(layer_of_file "$h")
		if [ "$(rank "$theirs")" -lt "$(rank "$mine")" ]; then
			diag "src/$f ($mine) includes $h.h ($theirs)"
			bad=yes
		fi
	done
	[ -z "$bad" ]
	ok $? "src/$f includes only headers of its own layer or below"
done

# Symbols.
for o in $objs; do
	obj=$(name_of "$o")
	mine=$(layer_of_file "$obj")
	$NM -u "$o" | awk '{ print $NF }' | sort -u >"$tmp/uses"
	bad=
	while read -r sym def; do
		theirs=$(layer_of_file "$def")
		if [ "$(rank "$theirs")" -lt "$(rank "$mine")" ]; then
			diag "$obj.o ($mine) uses $sym from $def.o ($theirs)"
			bad=yes
		fi
	done <<EOF
$(join "$tmp/uses" "$tmp/defs")
EOF
	[ -z "$bad" ]
	ok $? "$obj.o uses only what its own layer and those below define"
done
