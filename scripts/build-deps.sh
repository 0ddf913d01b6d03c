# build-deps.sh - shared by scripts/install.sh, scripts/test.sh and .ci/run;
# meant to be sourced, not run.  POSIX sh.
#
# Knows what building libosmem from a git checkout needs, finds what is
# missing and, on Debian and Ubuntu, installs it with apt-get when running
# as root.  Anyone else is shown the apt-get line to run.
#
# Each requirement is PROBE=PACKAGE.  PROBE is a command name, an absolute
# path that must exist, "m4:FILE" for a macro file aclocal must find, or
# "deb:NAME" for a Debian package that must be installed.
#
# SPDX-License-Identifier: MIT

# Needed to bootstrap, configure, build and install.  The C compiler is
# $CC when set.
osmem_cc=${CC:-cc}
osmem_cc=${osmem_cc%% *}
case $osmem_cc in
*clang*) osmem_cc_package=clang ;;
*) osmem_cc_package=gcc ;;
esac
osmem_build_reqs="autoconf=autoconf automake=automake libtoolize=libtool
	pkg-config=pkgconf m4:ax_pthread.m4=autoconf-archive make=make
	$osmem_cc=$osmem_cc_package /usr/include/stdio.h=libc6-dev"

# Used by the tests when present; without them some tests SKIP.
osmem_test_reqs="c++=g++ clang=clang mandoc=mandoc man=man-db strace=strace
	valgrind=valgrind python3=python3 git=git sqlite3=sqlite3"

# Used by continuous integration on top of those: make distcheck, the
# Debian package, and clang's sanitizer and libFuzzer runtimes.
osmem_ci_reqs="xz=xz-utils dpkg-buildpackage=dpkg-dev dh=debhelper
	lintian=lintian debchange=devscripts fakeroot=fakeroot
	deb:build-essential=build-essential deb:libclang-rt-14-dev=libclang-rt-14-dev"

# osmem_have PROBE: succeeds if PROBE is satisfied.
osmem_have() {
	case $1 in
	/*) test -e "$1" ;;
	m4:*)
		_d=$(aclocal --print-ac-dir 2>/dev/null) || _d=
		test -n "$_d" && test -f "$_d/${1#m4:}"
		;;
	deb:*)
		dpkg-query -W -f='${Status}\n' "${1#deb:}" 2>/dev/null |
			grep -q ' installed$'
		;;
	*) command -v "$1" >/dev/null 2>&1 ;;
	esac
}

# osmem_missing REQ...: prints the packages of the unmet requirements,
# space-separated, each once.
osmem_missing() {
	_m=
	for _r in "$@"; do
		osmem_have "${_r%%=*}" && continue
		case " $_m " in
		*" ${_r#*=} "*) ;;
		*) _m="$_m ${_r#*=}" ;;
		esac
	done
	echo ${_m# }
}

# osmem_apt_install PACKAGE...: installs with apt-get, updating the
# package lists once per run.
osmem_apt_install() {
	DEBIAN_FRONTEND=noninteractive
	export DEBIAN_FRONTEND
	if [ -z "${osmem_apt_updated-}" ]; then
		apt-get update -q || return 1
		osmem_apt_updated=1
	fi
	apt-get install -y -q --no-install-recommends "$@"
}

# osmem_need REQ...: every requirement must be met.  Installs what is
# missing as root on a system with apt-get; otherwise prints how and fails.
osmem_need() {
	_pkgs=$(osmem_missing "$@")
	test -z "$_pkgs" && return 0
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "Missing build tools; install these (Debian names) with your package manager: $_pkgs" >&2
		return 1
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "Missing build tools.  Install them with this line, then run this again:" >&2
		echo "sudo apt-get update && sudo apt-get install -y --no-install-recommends $_pkgs" >&2
		return 1
	fi
	echo "Installing missing build tools: $_pkgs"
	# shellcheck disable=SC2086 # one word per package
	osmem_apt_install $_pkgs || return 1
	_pkgs=$(osmem_missing "$@")
	test -z "$_pkgs" && return 0
	echo "Still missing after apt-get install: $_pkgs" >&2
	return 1
}

# osmem_want REQ...: like osmem_need, but nothing fails: without root the
# missing packages are only listed.
osmem_want() {
	_pkgs=$(osmem_missing "$@")
	test -z "$_pkgs" && return 0
	if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "Installing optional test tools: $_pkgs"
		# shellcheck disable=SC2086
		osmem_apt_install $_pkgs && return 0
	fi
	echo "Note: without $_pkgs some tests will be skipped." >&2
	return 0
}

# osmem_bootstrap TOP: generates TOP/configure with autogen.sh unless an
# up-to-date one is there already (as in a release tarball).
osmem_bootstrap() {
	if [ -x "$1/configure" ] && [ -z "$(find "$1/configure.ac" "$1/Makefile.am" \
	     -newer "$1/configure" 2>/dev/null)" ]; then
		return 0
	fi
	echo "Bootstrapping: $1/autogen.sh"
	sh "$1/autogen.sh"
}

# osmem_jobs: how many jobs make may run at once.
osmem_jobs() {
	nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2
}
