/*
 * The exec family: a command that starts a program with the session's environment removed
 * (`env -u LD_PRELOAD claude ...`, `env -i`, an SDK given an `env` of its own) gets it back, so
 * that an agent it starts is still found and metered. Only what tbwrap itself set is put back:
 * LD_PRELOAD gains libtbwrap.so, TBWRAP_SOCKET, TBWRAP_MATCH and TBWRAP_FILTERED return when
 * missing; everything else the command chose stays as it chose it. An environment that names
 * another session's socket (a tbwrap run below this one) is that session's, and left alone.
 *
 * These hooks may run in a vfork child, which shares the parent's memory: no malloc here. The
 * new environment is built on an anonymous mapping (freed when the exec fails; an exec that
 * succeeds takes the old address space with it).
 *
 * A program that execs without libc (a static binary, Go, Bun) is not seen here; the supervisor
 * finds the agents such programs start by what they run (README, Security).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"
#include "tbwrap/env.h"
#include "tbwrap/proto.h"

extern char **environ;

#define ENTRY_MAX (PATH_MAX + 64)
static bool have_session;
static char lib_path[PATH_MAX];
static char entry_socket[PROTO_NAME_LEN + sizeof(TBWRAP_ENV_SOCKET) + 1];
static char entry_match[4608];
static char entry_filtered[64];

static void make_entry(char *out, size_t len, const char *name, const char *value)
{
	int n = snprintf(out, len, "%s=%s", name, value ? value : "");
	if (n < 0 || (size_t)n >= len || !value)
		out[0] = '\0'; /* too long to carry: not put back */
}

void preload_capture_session(const char *self_path)
{
	const char *sock = getenv(TBWRAP_ENV_SOCKET);
	if (!sock || !*sock || !self_path || !*self_path || strlen(self_path) >= sizeof(lib_path))
		return;
	snprintf(lib_path, sizeof(lib_path), "%s", self_path);
	make_entry(entry_socket, sizeof(entry_socket), TBWRAP_ENV_SOCKET, sock);
	make_entry(entry_match, sizeof(entry_match), TBWRAP_ENV_MATCH, getenv(TBWRAP_ENV_MATCH));
	preload_session_filtered(getenv(TBWRAP_ENV_FILTERED));
	have_session = entry_socket[0] != '\0';
}

void preload_session_filtered(const char *value)
{
	make_entry(entry_filtered, sizeof(entry_filtered), TBWRAP_ENV_FILTERED, value);
}

/* "NAME=" prefix test. */
static bool is_var(const char *entry, const char *name)
{
	size_t n = strlen(name);
	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Whether an LD_PRELOAD value (':' or ' ' separated) holds a libtbwrap.so. */
static bool preloads_us(const char *value)
{
	static const char lib[] = TBWRAP_LIBRARY_NAME;
	const char *p = value;
	while (*p) {
		size_t n = strcspn(p, ": ");
		const char *base = p;
		for (const char *q = p; q < p + n; q++)
			if (*q == '/')
				base = q + 1;
		size_t blen = (size_t)(p + n - base);
		if (blen == sizeof(lib) - 1 && memcmp(base, lib, blen) == 0)
			return true;
		p += n;
		while (*p == ':' || *p == ' ')
			p++;
	}
	return false;
}

struct env_fix {
	void *map;
	size_t map_len;
};

/*
 * Returns envp, or a copy with the session's entries put back (fix->map then owns it). On a
 * mapping failure the command's own environment is used: the supervisor still finds an agent
 * started that way (by what it runs) and refuses it or says it runs unmetered.
 */
static char *const *fixed_env(char *const envp[], struct env_fix *fix)
{
	fix->map = NULL;
	if (!have_session || !envp)
		return envp;
	size_t n = 0;
	const char *preload = NULL;
	bool has_socket = false, has_match = false, has_filtered = false;
	for (; envp[n]; n++) {
		const char *e = envp[n];
		if (is_var(e, TBWRAP_ENV_SOCKET)) {
			if (strcmp(e, entry_socket) != 0)
				return envp; /* another session's */
			has_socket = true;
		} else if (is_var(e, TBWRAP_ENV_MATCH)) {
			has_match = true;
		} else if (is_var(e, TBWRAP_ENV_FILTERED)) {
			has_filtered = true;
		} else if (is_var(e, TBWRAP_ENV_PRELOAD)) {
			preload = e + sizeof(TBWRAP_ENV_PRELOAD);
		}
	}
	bool fix_preload = !preload || !preloads_us(preload);
	bool add_match = !has_match && entry_match[0];
	bool add_filtered = !has_filtered && entry_filtered[0];
	if (has_socket && !fix_preload && !add_match && !add_filtered)
		return envp;

	size_t old_len = preload ? strlen(preload) : 0;
	size_t str_len = sizeof(TBWRAP_ENV_PRELOAD) + strlen(lib_path) + 1 + old_len + 1;
	size_t len = (n + 5) * sizeof(char *) + str_len;
	void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED)
		return envp;
	char **out = map;
	char *preload_entry = (char *)map + (n + 5) * sizeof(char *);
	snprintf(preload_entry, str_len, "%s=%s%s%s", TBWRAP_ENV_PRELOAD, lib_path,
		 preload && *preload ? ":" : "", preload ? preload : "");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!(fix_preload && is_var(envp[i], TBWRAP_ENV_PRELOAD)))
			out[k++] = envp[i];
	if (fix_preload)
		out[k++] = preload_entry;
	if (!has_socket)
		out[k++] = entry_socket;
	if (add_match)
		out[k++] = entry_match;
	if (add_filtered)
		out[k++] = entry_filtered;
	out[k] = NULL;
	fix->map = map;
	fix->map_len = len;
	return out;
}

static int done(struct env_fix *fix, int rc)
{
	int saved = errno;
	if (fix->map)
		munmap(fix->map, fix->map_len);
	errno = saved;
	return rc;
}

static inline void resolve(void *fn)
{
	if (!fn)
		preload_resolve();
}

#define REAL(f) (resolve((void *)preload_real.f), preload_real.f)

static int do_execve(const char *path, char *const argv[], char *const envp[])
{
	struct env_fix fix;
	char *const *env = fixed_env(envp, &fix);
	int rc = REAL(execve) ? preload_real.execve(path, argv, env)
			      : (int)syscall(SYS_execve, path, argv, env);
	return done(&fix, rc);
}

static int do_execvpe(const char *file, char *const argv[], char *const envp[])
{
	struct env_fix fix;
	char *const *env = fixed_env(envp, &fix);
	if (!REAL(execvpe)) {
		errno = ENOSYS;
		return done(&fix, -1);
	}
	return done(&fix, preload_real.execvpe(file, argv, env));
}

HOOK int execve(const char *path, char *const argv[], char *const envp[])
{
	return do_execve(path, argv, envp);
}

HOOK int execv(const char *path, char *const argv[])
{
	return do_execve(path, argv, environ);
}

HOOK int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return do_execvpe(file, argv, envp);
}

HOOK int execvp(const char *file, char *const argv[])
{
	return do_execvpe(file, argv, environ);
}

HOOK int fexecve(int fd, char *const argv[], char *const envp[])
{
	struct env_fix fix;
	char *const *env = fixed_env(envp, &fix);
	int rc = REAL(fexecve) ? preload_real.fexecve(fd, argv, env)
			       : (int)syscall(SYS_execveat, fd, "", argv, env, AT_EMPTY_PATH);
	return done(&fix, rc);
}

HOOK int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
	struct env_fix fix;
	char *const *env = fixed_env(envp, &fix);
	int rc = REAL(execveat) ? preload_real.execveat(dirfd, path, argv, env, flags)
				: (int)syscall(SYS_execveat, dirfd, path, argv, env, flags);
	return done(&fix, rc);
}

HOOK int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
		     const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	struct env_fix fix;
	char *const *env = fixed_env(envp, &fix);
	if (!REAL(posix_spawn))
		return done(&fix, ENOSYS);
	/* posix_spawn returns when the child has exec'd or failed: its copy is no longer read. */
	return done(&fix, preload_real.posix_spawn(pid, path, fa, attr, argv, env));
}

HOOK int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
		      const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	struct env_fix fix;
	char *const *env = fixed_env(envp, &fix);
	if (!REAL(posix_spawnp))
		return done(&fix, ENOSYS);
	return done(&fix, preload_real.posix_spawnp(pid, file, fa, attr, argv, env));
}

/* The list forms: glibc's own call its internal execve, which no hook sees, so they are
 * rebuilt here on the stack (the way glibc builds them) and go through the hooks above. */
#define ARGS_MAX 65536

#define COLLECT_ARGS(arg0, last, argv)                                                             \
	size_t argc_ = 1;                                                                          \
	va_list ap_;                                                                               \
	va_start(ap_, arg0);                                                                       \
	while (va_arg(ap_, const char *))                                                          \
		argc_++;                                                                           \
	va_end(ap_);                                                                               \
	if (argc_ >= ARGS_MAX) {                                                                   \
		errno = E2BIG;                                                                     \
		return -1;                                                                         \
	}                                                                                          \
	char **argv = __builtin_alloca((argc_ + 1) * sizeof(char *));                              \
	argv[0] = (char *)(arg0);                                                                  \
	va_start(ap_, arg0);                                                                       \
	for (size_t i_ = 1; i_ <= argc_; i_++)                                                     \
		argv[i_] = va_arg(ap_, char *);                                                    \
	last;                                                                                      \
	va_end(ap_)

HOOK int execl(const char *path, const char *arg0, ...)
{
	COLLECT_ARGS(arg0, (void)0, argv);
	return do_execve(path, argv, environ);
}

HOOK int execlp(const char *file, const char *arg0, ...)
{
	COLLECT_ARGS(arg0, (void)0, argv);
	return do_execvpe(file, argv, environ);
}

HOOK int execle(const char *path, const char *arg0, ...)
{
	char *const *envp;
	COLLECT_ARGS(arg0, envp = va_arg(ap_, char *const *), argv);
	return do_execve(path, argv, envp);
}
