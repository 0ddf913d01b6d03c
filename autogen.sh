#!/bin/sh
# Generate configure and Makefile.in from a git checkout.
# Needs autoconf, automake, libtool, pkg-config (pkgconf) and autoconf-archive.
set -e
cd "$(dirname "$0")"
autoreconf -fi "$@"
