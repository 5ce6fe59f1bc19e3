/*
 * The seccomp filter an agent installs on itself (inherited by everything it starts).
 *
 * Write-family syscalls and sends are notified to the supervisor unless they carry the session's
 * tag in an argument the syscall does not use (arg 5): the preload library's libc path has metered
 * those bytes already. pwritev2 and sendto use all six arguments, so they are always notified.
 * io_uring_setup fails with ENOSYS so that nothing in the tree writes around the filter.
 *
 * ptrace attach, process_vm_writev and pidfd_getfd are notified too (they are rare): the
 * supervisor refuses them when they aim at an agent, so that nothing an agent runs takes the
 * agent itself over (README, Security).
 *
 * libseccomp 2.5.4 cannot set SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, so the BPF is exported and
 * loaded with seccomp(2) directly: with that flag a notified syscall, once received, is not
 * interrupted and restarted by Bun's GC signals (Bun suspends threads with SIGPWR), so each write
 * is seen once.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

static int add_rules(scmp_filter_ctx ctx, uint64_t tag)
{
	static const int tagged[] = {
		SCMP_SYS(write),   SCMP_SYS(writev),  SCMP_SYS(pwrite64),
		SCMP_SYS(pwritev), SCMP_SYS(sendmsg),
	};
	static const int always[] = {SCMP_SYS(pwritev2), SCMP_SYS(sendto)};
	int rc;

	for (size_t i = 0; i < sizeof(tagged) / sizeof(tagged[0]); i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, tagged[i], 1,
				      SCMP_A5_64(SCMP_CMP_NE, tag));
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < sizeof(always) / sizeof(always[0]); i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, always[i], 0);
		if (rc < 0)
			return rc;
	}
	static const int guarded[] = {SCMP_SYS(process_vm_writev), SCMP_SYS(pidfd_getfd)};
	for (size_t i = 0; i < sizeof(guarded) / sizeof(guarded[0]); i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, guarded[i], 0);
		if (rc < 0)
			return rc;
	}
	static const long attach[] = {PTRACE_ATTACH, PTRACE_SEIZE};
	for (size_t i = 0; i < sizeof(attach) / sizeof(attach[0]); i++) {
		rc = seccomp_rule_add(ctx, SCMP_ACT_NOTIFY, SCMP_SYS(ptrace), 1,
				      SCMP_A0_64(SCMP_CMP_EQ, (uint64_t)attach[i]));
		if (rc < 0)
			return rc;
	}
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(io_uring_setup), 0);
}

int preload_install_filter(uint64_t tag)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int memfd = -1, listener = -1, rc, saved;
	void *bpf = NULL;
	struct stat st;

	if (!ctx) {
		errno = ENOMEM;
		return -1;
	}
	/* Asked first, so that the reason is the system's (EPERM where a container forbids
	 * seccomp, ENOSYS without user notification) rather than libseccomp's EINVAL for an
	 * action it then believes unsupported. */
	struct seccomp_notif_sizes sizes;
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) {
		saved = errno;
		seccomp_release(ctx);
		errno = saved;
		return -1;
	}
	/* Other ABIs (32-bit, x32) pass untouched instead of being killed: programs run from an
	 * agent must keep working; the README says that their writes are not metered. */
	rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_ALLOW);
	if (rc == 0)
		rc = add_rules(ctx, tag);
	if (rc < 0) {
		errno = -rc;
		goto out;
	}
	memfd = (int)syscall(SYS_memfd_create, "tbwrap-bpf", MFD_CLOEXEC);
	if (memfd < 0)
		goto out;
	rc = seccomp_export_bpf(ctx, memfd);
	if (rc < 0) {
		errno = -rc;
		goto out;
	}
	if (fstat(memfd, &st) < 0)
		goto out;
	bpf = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, memfd, 0);
	if (bpf == MAP_FAILED) {
		bpf = NULL;
		goto out;
	}
	struct sock_fprog prog = {
		.len = (unsigned short)((size_t)st.st_size / sizeof(struct sock_filter)),
		.filter = bpf,
	};
	/* Without CAP_SYS_ADMIN a filter needs no_new_privs; it is set in every case so that the
	 * behaviour (sudo cannot gain privileges under an agent) does not depend on who runs it. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		goto out;
	listener = (int)syscall(
		SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
	if (listener < 0 && errno == EINVAL) {
		/* Kernels before 5.19 lack WAIT_KILLABLE_RECV: restarts are then possible and the
		 * meter's positioned feeds absorb them. */
		listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
					SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	}
out:
	saved = errno;
	if (bpf)
		munmap(bpf, (size_t)st.st_size);
	if (memfd >= 0)
		close(memfd);
	seccomp_release(ctx);
	errno = saved;
	return listener;
}
