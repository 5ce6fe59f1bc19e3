/*
 * hide_sym.so (preload_hide_sym.c): a preload placed before libtbwrap.so that makes
 * dlsym(RTLD_NEXT, NAME) return NULL for each NAME in $HIDE_SYMBOLS (comma-separated), as a libc
 * that lacks the symbol would. Every other lookup is answered from libc itself. It lets the tests
 * check that libtbwrap.so never calls through a NULL it got from dlsym.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

__attribute__((visibility("default"))) void *dlsym(void *handle, const char *name);

static bool hidden(const char *name)
{
	const char *list = getenv("HIDE_SYMBOLS");
	size_t n = strlen(name);
	for (const char *p = list; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && memcmp(p, name, n) == 0)
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

void *dlsym(void *handle, const char *name)
{
	/* The real dlsym, by version (an unversioned lookup would find this one again). */
	static void *(*real)(void *, const char *);
	if (!real)
		real = (void *(*)(void *, const char *))dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34");
	if (!real)
		real = (void *(*)(void *, const char *))dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5");
	if (handle == RTLD_NEXT) {
		if (hidden(name))
			return NULL;
		/* RTLD_NEXT would be judged from this library: ask libc directly. */
		void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
		return libc && real ? real(libc, name) : NULL;
	}
	return real ? real(handle, name) : NULL;
}
