#include <osmem.h>
#include "tap.h"
#include <stdint.h>
#include <string.h>
int main(void)
{
	char *p = os_malloc(10);
	ok(p != NULL, "malloc 10");
	ok(((uintptr_t)p & 15) == 0, "aligned");
	memset(p, 1, 10);
	os_free(p);
	return tap_done();
}
