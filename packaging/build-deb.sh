#!/bin/bash
# build-deb.sh - build the Debian packages of libosmem the way a packager
# would: from the release tarball that "make dist" makes, with
# packaging/debian as its debian/ directory, then check them with lintian.
#
# Usage: packaging/build-deb.sh [OUTPUT-DIRECTORY]
#
# The source tree is copied first (the files git knows of, or all of them
# outside a git checkout), so that bootstrapping and building never write
# into it.  The packages, the source package and the lintian report end up
# in OUTPUT-DIRECTORY, _deb/ at the top of the source tree by default.
#
# Run as root, it installs the tools it lacks with apt-get; otherwise it
# prints the apt-get command to run and stops.
#
# SPDX-License-Identifier: MIT

set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$top/_deb}

say() { printf '==> %s\n' "$*"; }
die() {
	printf 'build-deb.sh: %s\n' "$*" >&2
	[ -z "${work-}" ] || printf 'build-deb.sh: the work directory %s is kept\n' "$work" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# Tools: each command, and the Debian package that provides it.
tools=(
	"gcc:build-essential" "make:build-essential" "dpkg-buildpackage:dpkg-dev"
	"dh:debhelper" "lintian:lintian" "debchange:devscripts"
	"autoreconf:autoconf" "automake:automake" "libtoolize:libtool"
	"pkg-config:pkgconf" "xz:xz-utils"
)
missing=()
for t in "${tools[@]}"; do
	command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t#*:}")
done
# The AX_ macros of configure.ac come from autoconf-archive when bootstrapping.
[ -f /usr/share/aclocal/ax_pthread.m4 ] || missing+=(autoconf-archive)
if [ ${#missing[@]} -gt 0 ]; then
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	if [ "$(id -u)" -ne 0 ]; then
		echo "build-deb.sh needs packages that are not installed; as root, run:" >&2
		echo "  apt-get install --no-install-recommends ${missing[*]}" >&2
		exit 1
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "${missing[@]}" ||
		{ apt-get update && apt-get install -y --no-install-recommends "${missing[@]}"; }
fi

# ---------------------------------------------------------------------------
# The version is the one of AC_INIT in configure.ac, and only that one.
version=$(sed -n 's/^AC_INIT(\[libosmem\], *\[\([^]]*\)\].*/\1/p' "$top/configure.ac")
[ -n "$version" ] || die "cannot read the version from AC_INIT in configure.ac"
debversion=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
[ "${debversion%-*}" = "$version" ] ||
	die "packaging/debian/changelog is at $debversion, configure.ac at $version: add a changelog entry (debchange -v $version-1)"

work=$(mktemp -d "${TMPDIR:-/tmp}/build-deb.XXXXXX")
say "working in $work"

# ---------------------------------------------------------------------------
# 1. A copy of the source tree, bootstrapped.
mkdir "$work/src"
if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Tracked files and new ones not ignored, as they are in the work tree.
	(cd "$top" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf -) | tar -xf - -C "$work/src"
else
	(cd "$top" && tar --exclude=./_deb --exclude=./autom4te.cache -cf - .) |
		tar -xf - -C "$work/src"
fi
say "bootstrapping (autogen.sh)"
(cd "$work/src" && ./autogen.sh) >"$work/autogen.log" 2>&1 ||
	{ cat "$work/autogen.log" >&2; die "autogen.sh failed"; }

# ---------------------------------------------------------------------------
# 2. The release tarball, made in a build directory of its own.
say "making the release tarball (make dist)"
mkdir "$work/build"
(cd "$work/build" && "$work/src/configure" && make dist) >"$work/dist.log" 2>&1 ||
	{ tail -n 40 "$work/dist.log" >&2; die "make dist failed (log above)"; }
tarball=$work/build/libosmem-$version.tar.xz
[ -f "$tarball" ] || die "make dist did not make $tarball"

# ---------------------------------------------------------------------------
# 3. The tarball as the upstream source of a Debian source package.
mkdir "$work/deb"
cp "$tarball" "$work/deb/libosmem_$version.orig.tar.xz"
tar -xf "$work/deb/libosmem_$version.orig.tar.xz" -C "$work/deb"
pkgdir=$work/deb/libosmem-$version
[ -d "$pkgdir" ] || die "the tarball does not unpack into libosmem-$version/"
cp -a "$top/packaging/debian" "$pkgdir/debian"

say "building the source package (dpkg-source -b)"
(cd "$work/deb" && dpkg-source -b "libosmem-$version") >"$work/source.log" 2>&1 ||
	{ cat "$work/source.log" >&2; die "dpkg-source failed"; }

# Build dependencies that are still missing (man-db and mandoc run the
# page tests, autoconf-archive serves dh_autoreconf).
if ! unmet=$(cd "$pkgdir" && dpkg-checkbuilddeps 2>&1); then
	deps=$(printf '%s\n' "$unmet" | sed -n 's/.*Unmet build dependencies: //p' |
		sed -e 's/([^)]*)//g' -e 's/<[^>]*>//g' -e 's/|[^ ]*//g')
	if [ "$(id -u)" -ne 0 ]; then
		echo "build-deb.sh: missing build dependencies; as root, run:" >&2
		echo "  apt-get install --no-install-recommends $deps" >&2
		exit 1
	fi
	say "installing build dependencies: $deps"
	# shellcheck disable=SC2086 # one word per package
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $deps
fi

say "building the binary packages (dpkg-buildpackage -us -uc -b)"
(cd "$pkgdir" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
	{ tail -n 60 "$work/build.log" >&2; die "dpkg-buildpackage failed (log above)"; }

# ---------------------------------------------------------------------------
# 4. The results, then lintian over the binary and the source packages.
rm -rf "$out"
mkdir -p "$out"
cp "$work"/deb/*.deb "$work"/deb/*.changes "$work"/deb/*.buildinfo \
	"$work"/deb/*.dsc "$work"/deb/*.debian.tar.* "$work"/deb/*.orig.tar.* "$out"/
cp "$work/build.log" "$out/build.log"
changes=$(ls "$out"/libosmem_"$version"-*_*.changes)
dsc=$(ls "$out"/libosmem_"$version"-*.dsc)

say "lintian --fail-on error,warning"
status=0
lintian --fail-on error,warning --display-info "$changes" "$dsc" 2>&1 |
	tee "$out/lintian.txt" || status=$?
[ -s "$out/lintian.txt" ] || echo "(lintian reported nothing)" | tee "$out/lintian.txt"

echo
say "packages in $out:"
(cd "$out" && ls -1 ./*.deb)
[ "$status" -eq 0 ] || die "lintian found errors or warnings (see $out/lintian.txt)"
rm -rf "$work"
