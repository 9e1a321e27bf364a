/* The settings a command gets just before execve (executor.h, struct
 * xsec), in runc's order (libcontainer/standard_init_linux.go): rlimits,
 * the bounding set, no_new_privs, the uid and gid change between
 * PR_SET_KEEPCAPS on and off, capset, the ambient set, seccomp last.
 * Called in the spawned or entered command's own process, after fork and
 * before execve: one syscall at a time, nothing allocated, nothing
 * decided; each function returns 0, or the XSEC_STEP_* of the call that
 * failed with errno set, for the caller to report. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "executor.h"

/* The decoded settings: decoded before fork, used in the child. */
static unsigned char secbuf[XMAX_MSG / 2] __attribute__((aligned(8)));
static const struct xsec *sec;

void xsec_clear(void)
{
	sec = NULL;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int xsec_decode(const char *hex)
{
	size_t n = strlen(hex);
	sec = NULL;
	if (n % 2 || n / 2 > sizeof(secbuf) || n / 2 < sizeof(struct xsec))
		return errno = EINVAL, -1;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = unhex(hex[2 * i]), lo = unhex(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return errno = EINVAL, -1;
		secbuf[i] = hi << 4 | lo;
	}
	const struct xsec *s = (const struct xsec *)secbuf;
	if (s->nfilter > BPF_MAXINSNS || s->nrlimit > RLIM_NLIMITS || s->lastcap > 63 ||
	    n / 2 != sizeof(*s) + s->nrlimit * sizeof(struct xrlimit) + s->nfilter * sizeof(struct sock_filter))
		return errno = EINVAL, -1;
	sec = s;
	return 0;
}

static uint32_t install_filter(void)
{
	struct sock_fprog prog = {
		.len = sec->nfilter,
		.filter = (struct sock_filter *)(secbuf + sizeof(*sec) + sec->nrlimit * sizeof(struct xrlimit)),
	};
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0 ? XSEC_STEP_SECCOMP : 0;
}

uint32_t xsec_before_ids(void)
{
	if (!sec)
		return 0;
	const struct xrlimit *rl = (const struct xrlimit *)(secbuf + sizeof(*sec));
	for (uint32_t i = 0; i < sec->nrlimit; i++) {
		struct rlimit r = { .rlim_cur = rl[i].cur, .rlim_max = rl[i].max };
		if (setrlimit(rl[i].resource, &r) < 0)
			return XSEC_STEP_RLIMIT;
	}
	/* Without no_new_privs the kernel takes a filter only from a process
	 * with CAP_SYS_ADMIN (seccomp(2)): install it while the command still
	 * has it, as runc does; the filter then sees the calls below. */
	if (sec->nfilter && !(sec->flags & XSEC_NNP) && install_filter())
		return XSEC_STEP_SECCOMP;
	if (sec->flags & XSEC_CAPS)
		for (uint32_t c = 0; c <= sec->lastcap; c++)
			if (!(sec->cap[XCAP_BOUNDING] >> c & 1) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
				return XSEC_STEP_BOUNDING;
	if ((sec->flags & XSEC_NNP) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return XSEC_STEP_NNP;
	/* A uid change from 0 clears the permitted set unless asked to keep
	 * it (capabilities(7), "Effect of user ID changes"). */
	if ((sec->flags & XSEC_CAPS) && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return XSEC_STEP_KEEPCAPS;
	return 0;
}

uint32_t xsec_after_ids(void)
{
	if (!sec || !(sec->flags & XSEC_CAPS))
		return 0;
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return XSEC_STEP_CLEARKEEPCAPS;
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	for (int i = 0; i < 2; i++) {
		d[i].effective = sec->cap[XCAP_EFFECTIVE] >> (32 * i);
		d[i].permitted = sec->cap[XCAP_PERMITTED] >> (32 * i);
		d[i].inheritable = sec->cap[XCAP_INHERITABLE] >> (32 * i);
	}
	if (syscall(SYS_capset, &h, d) < 0)
		return XSEC_STEP_CAPSET;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return XSEC_STEP_AMBIENT_CLEAR;
	for (uint32_t c = 0; c <= sec->lastcap; c++)
		if ((sec->cap[XCAP_AMBIENT] >> c & 1) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0)
			return XSEC_STEP_AMBIENT_RAISE;
	return 0;
}

/* Under no_new_privs the filter goes in last before execve: it sees
 * nothing of the executor's but execve itself. */
uint32_t xsec_last(void)
{
	if (sec && sec->nfilter && (sec->flags & XSEC_NNP))
		return install_filter();
	return 0;
}
