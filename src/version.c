/*
 * version.c - the version of the library in use (os_version).
 *
 * SPDX-License-Identifier: MIT
 */
#include <osmem.h>

#include "internal.h"

OSMEM_PUBLIC const char *os_version(void)
{
	return PACKAGE_VERSION;
}
