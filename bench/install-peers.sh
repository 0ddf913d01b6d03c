#!/bin/sh
# install-peers.sh - installs what bench/run.sh compares libosmem with:
# jemalloc, mimalloc and tcmalloc from Debian's packages, strace to count
# system calls, valgrind for bench/callgrind.sh, and for bench/apps.sh
# GNU time and the programs it runs (Python, SQLite's shell and xz; sort
# and gcc are there already wherever libosmem builds).  As root it runs
# apt-get; otherwise it prints the command to run.
#
#   sh bench/install-peers.sh [PACKAGE...]   (default: the list below)
#
# SPDX-License-Identifier: MIT
set -eu

if test $# -gt 0; then
	pkgs=$*
else
	pkgs="libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 strace valgrind"
	pkgs="$pkgs time python3 sqlite3 xz-utils"
fi

if test "$(id -u)" -ne 0; then
	echo "Run this as root, or run:"
	echo "  sudo apt-get install -y --no-install-recommends $pkgs"
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# A stale package list is refreshed only when the install needs it.
# shellcheck disable=SC2086 # one word per package
apt-get install -y --no-install-recommends $pkgs ||
	{ apt-get update && apt-get install -y --no-install-recommends $pkgs; }
