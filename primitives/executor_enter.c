/* `stepbox __enter`: joins a box's namespaces from the host before the Go
 * runtime starts, as nsenter(1) does, and runs the command the session
 * decided (enter.go). Called from executor.c's constructor; one syscall at
 * a time, no policy: the session reads the status descriptor and the exit
 * code. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "executor.h"

static pid_t entered;
/* The last signal this process received and passed on (forward). */
static volatile sig_atomic_t passed;

static void pass_on(int sig)
{
	/* The command leads its own session and process group; before its
	 * setsid(), the group is not there yet: the command alone. */
	if (entered > 0 && kill(-entered, sig) < 0)
		kill(entered, sig);
}

static void forward(int sig)
{
	passed = sig;
	pass_on(sig);
}

/* SIGUSR1 is the session's detach (the learner's Ctrl-P Ctrl-Q, see
 * terminal_detach.go): SIGKILL, which the command cannot ignore. */
static void detach(int sig)
{
	(void)sig;
	pass_on(SIGKILL);
}

static void enter_fail(int status, int32_t step)
{
	int32_t msg[2] = { step, errno };
	if (write(status, msg, sizeof(msg)) < 0)
		_exit(126);
	_exit(125);
}

static char *xenv[XMAX_ARGS + 1];

/* command_env maps the command's environment from the session's
 * descriptor fd (NUL-terminated strings) and points xenv at them: this
 * process itself started with stepbox's own environment, since the host's
 * loader ran it (ld.so(8): LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT…). */
static char **command_env(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return NULL;
	if (st.st_size > XENTER_MAX_ENV) {
		errno = E2BIG;
		return NULL;
	}
	size_t len = st.st_size, n = 0;
	char *env = NULL;
	if (len > 0) {
		env = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (env == MAP_FAILED)
			return NULL;
		if (env[len - 1] != '\0') {
			errno = EINVAL;
			return NULL;
		}
	}
	for (size_t off = 0; off < len; off += strlen(env + off) + 1) {
		if (n == XMAX_ARGS) {
			errno = E2BIG;
			return NULL;
		}
		xenv[n++] = env + off;
	}
	xenv[n] = NULL;
	close(fd);
	return xenv;
}

/* enter joins a box's namespaces from the host, as nsenter(1) does: every
 * argument was decided by the session (enter.go), which reads the status
 * descriptor and the exit code. */
void xenter(int argc, char **argv)
{
	if (argc < 8)
		_exit(126);
	/* Non-dumpable while it joins the box, as the executor is. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		_exit(126);
	char *end;
	long flags = strtol(argv[2], &end, 10);
	unsigned long uid = 0, gid = 0;
	if (flags & XENTER_IDS) {
		if (*end != ':')
			_exit(126);
		uid = strtoul(end + 1, &end, 10);
		if (*end != ':')
			_exit(126);
		gid = strtoul(end + 1, NULL, 10);
	}
	int status = strtol(argv[3], NULL, 10);
	int ncgroup = strtol(argv[4], NULL, 10);
	if (fcntl(status, F_SETFD, FD_CLOEXEC) < 0)
		_exit(126);
	static char *empty[] = { NULL };
	char **cmdenv = empty;
	if ((flags & XENTER_ENV) && !(cmdenv = command_env(status + 1)))
		enter_fail(status, XENTER_ENVIRON);
	/* The box's cgroup first, while this process is still the host's
	 * root: "0" moves the writer (cgroups(7)). */
	for (int c = 0; c < ncgroup; c++)
		if (write(3 + c, "0", 1) < 0)
			enter_fail(status, XSEC_STEP_CGROUP);
	xsec_clear();
	if (strcmp(argv[5], "-") != 0 && xsec_decode(argv[5]) < 0)
		enter_fail(status, XSEC_STEP_DECODE);
	/* The host's supplementary groups go while this process is still the
	 * host's root: in a user namespace whose setgroups file says "deny"
	 * (user_namespaces(7)) the call is refused. */
	if ((flags & XENTER_ROOT) && (flags & XENTER_NOGROUPS) && setgroups(0, NULL) < 0)
		enter_fail(status, XENTER_SETGROUPS);
	int i = 6, n = 0;
	for (; i < argc && strcmp(argv[i], "--") != 0; i++, n++)
		if (setns(3 + ncgroup + n, strtol(argv[i], NULL, 10)) < 0)
			enter_fail(status, n + 1);
	if (i + 3 >= argc)
		_exit(126);
	const char *dir = argv[i + 1];
	/* Joining a user namespace keeps the host's IDs, which it may show as
	 * nobody: become its root, as nsenter -U does (nsenter(1)). */
	if (flags & XENTER_ROOT) {
		if (setresgid(0, 0, 0) < 0)
			enter_fail(status, XENTER_SETRESGID);
		if (setresuid(0, 0, 0) < 0)
			enter_fail(status, XENTER_SETRESUID);
	}
	/* A PID namespace joined applies to children only (setns(2)): fork. */
	entered = fork();
	if (entered < 0)
		enter_fail(status, XENTER_FORK);
	if (entered == 0) {
		sigset_t all, none;
		sigfillset(&all);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &all, NULL);
		/* Its own session, without a controlling terminal (see op_spawn). */
		if (setsid() < 0)
			enter_fail(status, XENTER_SETSID);
		if ((flags & XENTER_CTTY) && ioctl(0, TIOCSCTTY, 0) < 0)
			enter_fail(status, XENTER_TIOCSCTTY);
		/* The box's root, as nsenter --root takes it: setns(CLONE_NEWNS)
		 * left this process at the namespace's root, the host's files
		 * when the box changed its own with chroot (setns(2)). Then the
		 * command, looked up in /proc/PID/root, runs from there. */
		if (flags & XENTER_BOXROOT) {
			if (fchdir(status + 2) < 0)
				enter_fail(status, XENTER_FCHDIR);
			if (chroot(".") < 0)
				enter_fail(status, XENTER_CHROOT);
			close(status + 2);
		}
		/* The image's WorkingDir, as op_spawn's chdir: resolved here, in
		 * the box's root, never by the host. */
		if (dir[0] && chdir(dir) < 0)
			enter_fail(status, XENTER_CHDIR);
		uint32_t step;
		if ((step = xsec_before_ids()))
			enter_fail(status, step);
		/* The image's User, as op_spawn gives it to exec: groups first
		 * (unless already dropped before joining), then gid, then uid. */
		if (flags & XENTER_IDS) {
			if (!(flags & XENTER_NOGROUPS) && setgroups(0, NULL) < 0)
				enter_fail(status, XENTER_IDS_SETGROUPS);
			if (setresgid(gid, gid, gid) < 0)
				enter_fail(status, XENTER_IDS_SETRESGID);
			if (setresuid(uid, uid, uid) < 0)
				enter_fail(status, XENTER_IDS_SETRESUID);
		}
		if ((step = xsec_after_ids()))
			enter_fail(status, step);
		syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if ((step = xsec_last()))
			enter_fail(status, step);
		execve(argv[i + 2], argv + i + 3, cmdenv);
		enter_fail(status, XENTER_EXECVE);
	}
	/* The session's Ctrl-C (cancel) reaches this process: pass it on. */
	struct sigaction sa = { .sa_handler = forward };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	struct sigaction sd = { .sa_handler = detach };
	sigaction(SIGUSR1, &sd, NULL);
	int ws;
	while (waitpid(entered, &ws, 0) < 0)
		if (errno != EINTR)
			_exit(126);
	/* The command's own wait status, and the signal passed on to it, if
	 * any: an exit code cannot tell a command killed by SIGINT from a
	 * shell that exited with status 130 (its last command's). */
	int sig = passed;
	int32_t msg[4] = { XENTER_WAITED, ws, XENTER_PASSED, sig };
	if (write(status, msg, sig ? sizeof(msg) : sizeof(msg) / 2) < 0) {
		/* The session reads the exit code alone, as before. */
	}
	_exit(WIFSIGNALED(ws) ? 128 + WTERMSIG(ws) : WEXITSTATUS(ws));
}
