#!/bin/sh
# install.sh - build libosmem, install it and prove the installation works
# by building and running a small program through pkg-config.
#
# Usage: [PREFIX=/usr/local] [LIBDIR=$PREFIX/lib] [BUILDDIR=_build/install]
#        sh scripts/install.sh [extra configure options]
#
# Missing build tools are installed with apt-get when run as root; anyone
# else is shown the line to run.  Installing into a directory you cannot
# write needs root as well.
#
# SPDX-License-Identifier: MIT
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/build-deps.sh"

PREFIX=${PREFIX:-/usr/local}
LIBDIR=${LIBDIR:-$PREFIX/lib}
builddir=${BUILDDIR:-$top/_build/install}
case $PREFIX in
/*) ;;
*) echo "PREFIX must be an absolute directory, not '$PREFIX'." >&2; exit 1 ;;
esac

# The first directory of $1 that exists, going up.
existing_parent() {
	_d=$1
	while [ ! -d "$_d" ]; do _d=$(dirname "$_d"); done
	echo "$_d"
}
if [ "$(id -u)" -ne 0 ] && [ ! -w "$(existing_parent "$PREFIX")" ]; then
	echo "You cannot write to $PREFIX.  Run this as root (e.g. with sudo)," >&2
	echo "or pick a prefix of your own: PREFIX=\$HOME/.local sh scripts/install.sh" >&2
	exit 1
fi

# shellcheck disable=SC2086 # one requirement per word
osmem_need $osmem_build_reqs
osmem_bootstrap "$top"

mkdir -p "$builddir"
cd "$builddir"
"$top/configure" --prefix="$PREFIX" --libdir="$LIBDIR" "$@"
make -j"$(osmem_jobs)"
make install
if [ "$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null 2>&1; then
	# Refresh the dynamic linker's cache so that the new library is found
	# where the system looks (/usr/local/lib is one of those places).
	ldconfig
fi

# An example program, built the way any user of the library builds one.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PKG_CONFIG_PATH=$LIBDIR/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export PKG_CONFIG_PATH
flags="$(pkg-config --cflags osmem) $(pkg-config --libs osmem)"
echo "Building an example: ${CC:-cc} -o example consumer.c $flags"
# shellcheck disable=SC2086 # the flags are separate words
${CC:-cc} -o "$tmp/example" "$top/tests/install/consumer.c" $flags

# Where the dynamic linker finds libosmem without help, run the example as
# is; otherwise point it at LIBDIR, as programs using this prefix must.
if ldd "$tmp/example" 2>/dev/null | grep -q "=> $LIBDIR/libosmem\.so"; then
	out=$("$tmp/example") || true
else
	out=$(LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$tmp/example") || true
	echo "Note: the dynamic linker does not search $LIBDIR; programs need"
	echo "      LD_LIBRARY_PATH=$LIBDIR (or $LIBDIR in /etc/ld.so.conf.d/ and ldconfig)."
fi
echo "Example program says: $out"
if [ "$out" != ok ]; then
	echo "The example program failed: the installation in $PREFIX does not work." >&2
	exit 1
fi
case ":$(pkg-config --variable=pc_path pkg-config 2>/dev/null):" in
*":$LIBDIR/pkgconfig:"*) ;;
*) echo "Note: pkg-config finds osmem with PKG_CONFIG_PATH=$LIBDIR/pkgconfig." ;;
esac
echo "libosmem is installed in $PREFIX."
