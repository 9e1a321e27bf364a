/* The box's executor: what a box process and its PID 1 run instead of Go.
 *
 * A box process is /proc/self/exe started as `stepbox __box NAME`. The
 * constructor below recognises it before the Go runtime starts (as runc's
 * nsexec does), so the process has one thread: the kernel lets only a
 * single-threaded process unshare(CLONE_NEWUSER) or setns into a user or
 * time namespace (unshare(2), setns(2)), and every thread would count
 * against the box's pids.max.
 *
 * It loops over one switch of op codes (bubblewrap's privileged_op
 * shape): each op is one syscall, asked for by the session, answered with
 * its result and errno. No paths are worked out here, nothing is decided,
 * no text is written: that is all Go's (executor.go, and the steps).
 * After `unshare pid` the session asks for XOP_FORK_INIT: the child is
 * PID 1 of the new namespace and runs the same loop, as a minimal init
 * (tini, catatonit): it reaps every child and forwards signals to the
 * command it runs. Nothing allocates after fork: buffers are static. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "executor.h"

static void title_self(const char *prog);

#define SOCK_FD 3

static char rbuf[XMAX_MSG];
static char dbuf[XMAX_DATA];
static char *strs[XMAX_ARGS * 2 + 4];
static int sock = SOCK_FD;
static int sigfd = -1;
static pid_t command;   /* the spawned command waited for, or 0 */
static pid_t commandpg; /* its process group, where signals are forwarded */
static int is_init;

static void reply(int32_t kind, int err, int64_t val, int64_t val2, uint32_t step,
		  const char *data, uint32_t len, int fd)
{
	/* The session reads one packet of at most a header and XMAX_DATA
	 * bytes: a longer reply would be cut there, and a reply the socket
	 * cannot carry would never arrive. Refuse instead of sending it. */
	if (len > XMAX_DATA) {
		err = EMSGSIZE;
		val = -1;
		len = 0;
		data = NULL;
	}
	struct xrep r = { .kind = kind, .err = err, .val = val, .val2 = val2, .step = step, .len = len };
	struct iovec iov[2] = { { &r, sizeof(r) }, { (void *)data, len } };
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = data ? 2 : 1 };
	if (fd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		m.msg_control = cbuf;
		m.msg_controllen = sizeof(cbuf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (sendmsg(sock, &m, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* result answers an op whose syscall returned rc (-1 with errno set). */
static void result(long rc)
{
	reply(XREP_RESULT, rc < 0 ? errno : 0, rc, 0, 0, NULL, 0, -1);
}

static const char *opt(const char *s)
{
	return s[0] ? s : NULL;
}

/* The signals PID 1 forwards to the command it runs. */
static void forwarded(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGCHLD);
	if (!is_init)
		return;
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
	sigaddset(set, SIGUSR1);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGWINCH);
}

static int watch_signals(void)
{
	sigset_t set;
	forwarded(&set);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	sigfd = signalfd(sigfd, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return sigfd;
}

/* reap waits for every child that has ended, as an init must: a spawned
 * command's status goes to the session. */
static void reap(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == command) {
			command = commandpg = 0;
			reply(XREP_EXITED, 0, pid, status, 0, NULL, 0, -1);
		}
	}
}

static void on_signal(void)
{
	struct signalfd_siginfo si;
	while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			reap();
		else if (command > 0)
			kill(commandpg > 0 ? -commandpg : command, si.ssi_signo);
	}
}

/* A command is spawned as posix_spawn(3) does: clone(CLONE_VM|CLONE_VFORK)
 * on a stack of its own. The child shares the executor's memory until its
 * execve, and the executor sleeps until then, so nothing is copied and no
 * page is torn down again at the execve. The child makes only syscalls
 * (through their plain libc wrappers, the executor being one thread) and
 * writes to no memory but its stack. Linux before 6.3 refuses CLONE_VM
 * while a time namespace waits for the children (after `unshare time`):
 * there the child is a copy, as fork makes. Either way a failed call is
 * reported on a close-on-exec pipe, read once the executor wakes up. */
static char spawn_stack[64 << 10] __attribute__((aligned(16)));

struct spawn_req {
	const struct xreq *q;
	int *fds;
	int nextra;
	char **argv, **envp;
	int pipe; /* the write end */
};

/* session_gone says whether the session has closed its end of the socket.
 * It does when it gives up on a request it sent (executor.go, silent: a
 * frozen or stopped executor), and says the request did not run: a
 * request read after that, once the freeze lifts, must not run either
 * (poll(2) reports POLLHUP once the peer of a SOCK_SEQPACKET socket is
 * closed, while the requests it sent are still queued to read). */
static int session_gone(void)
{
	struct pollfd p = { sock, POLLIN, 0 };
	return poll(&p, 1, 0) > 0 && (p.revents & POLLHUP);
}

static void spawn_fail(const struct spawn_req *r, uint32_t step)
{
	int32_t msg[2] = { step, errno };
	if (write(r->pipe, msg, sizeof(msg)) < 0)
		_exit(126);
	_exit(127);
}

static int spawn_child(void *arg)
{
	const struct spawn_req *r = arg;
	const struct xreq *q = r->q;
	int64_t flags = q->num[0];
	int *fds = r->fds, nextra = r->nextra;
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		spawn_fail(r, 1);
	/* A session of its own: never the learner's terminal's (the
	 * session sends pipes, or a pty of the command's own). */
	if ((flags & XSPAWN_SETSID) && setsid() < 0)
		spawn_fail(r, 2);
	/* Out of the way of 0-2 first: a received fd may be one of them. */
	int hi[3];
	for (int i = 0; i < 3; i++)
		if ((hi[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 10)) < 0)
			spawn_fail(r, 3);
	for (int i = 0; i < 3; i++)
		if (dup2(hi[i], i) < 0)
			spawn_fail(r, 3);
	/* A pty of its own, made by the session: its controlling terminal,
	 * as the new session's leader (tty_ioctl(4)). */
	if ((flags & XSPAWN_CTTY) && ioctl(0, TIOCSCTTY, 0) < 0)
		spawn_fail(r, 12);
	if (strs[1][0] && chdir(strs[1]) < 0)
		spawn_fail(r, 5);
	uint32_t step;
	if ((step = xsec_before_ids()))
		spawn_fail(r, step);
	/* Groups first: once the uid is not 0 nothing more may change. The
	 * raw syscalls: glibc's wrappers would signal every thread of a
	 * multi-threaded caller (nptl's setxid), which this child is not. */
	if (flags & XSPAWN_SETID) {
		if (syscall(SYS_setgroups, 0, NULL) < 0)
			spawn_fail(r, 8);
		if (syscall(SYS_setresgid, q->num[3], q->num[3], q->num[3]) < 0)
			spawn_fail(r, 9);
		if (syscall(SYS_setresuid, q->num[2], q->num[2], q->num[2]) < 0)
			spawn_fail(r, 10);
	}
	/* The file to run and the command's own descriptors go above
	 * every number they will take, before they take them. */
	int exe = -1, extra[XMAX_FDS];
	if (flags & XSPAWN_EXECFD) {
		if ((exe = fcntl(fds[3], F_DUPFD_CLOEXEC, 10 + XMAX_FDS)) < 0)
			spawn_fail(r, 11);
		for (int i = 0; i < nextra; i++)
			if ((extra[i] = fcntl(fds[4 + i], F_DUPFD_CLOEXEC, 10 + XMAX_FDS)) < 0)
				spawn_fail(r, 11);
	}
	if ((step = xsec_after_ids()))
		spawn_fail(r, step);
	/* Last look, while the socket is still SOCK_FD: a freeze that held
	 * this child since the executor read the request may have lifted
	 * after the session gave the command up. */
	if (session_gone()) {
		errno = ECANCELED;
		spawn_fail(r, 7);
	}
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		spawn_fail(r, 6);
	/* dup2 clears FD_CLOEXEC on the copy: these stay open across exec. */
	for (int i = 0; i < nextra; i++)
		if (dup2(extra[i], 3 + i) < 0)
			spawn_fail(r, 11);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if ((step = xsec_last()))
		spawn_fail(r, step);
	if (flags & XSPAWN_EXECFD)
		/* The descriptor may be close-on-exec: an ELF file still runs
		 * (execveat(2), only a script would lose it). */
		syscall(SYS_execveat, exe, "", r->argv, r->envp, AT_EMPTY_PATH);
	else
		execve(strs[0], r->argv, r->envp);
	spawn_fail(r, 7);
	return 0;
}

static void op_spawn(const struct xreq *q, int *fds, int nfds)
{
	int64_t flags = q->num[0], argc = q->num[1];
	/* The settings, if any, are the last string. */
	uint32_t nstr = q->nstr - ((flags & XSPAWN_SECURITY) ? 1 : 0);
	int nextra = (flags & XSPAWN_EXECFD) ? nfds - 4 : 0;
	if (nfds != 3 + ((flags & XSPAWN_EXECFD) ? 1 + nextra : 0) || nextra < 0 ||
	    argc < 1 || q->nstr < 1 || nstr < 2 + argc || nstr - 2 - argc > XMAX_ARGS) {
		reply(XREP_RESULT, EBADMSG, -1, 0, 0, NULL, 0, -1);
		return;
	}
	xsec_clear();
	if ((flags & XSPAWN_SECURITY) && xsec_decode(strs[nstr]) < 0) {
		reply(XREP_RESULT, errno, -1, 0, XSEC_STEP_DECODE, NULL, 0, -1);
		return;
	}
	struct spawn_req r = { .q = q, .fds = fds, .nextra = nextra, .argv = strs + 2, .envp = strs + 2 + argc + 1 };
	/* argv and envp need a NULL each: shift envp up by one in place. */
	for (long i = nstr - 1; i >= 2 + argc; i--)
		strs[i + 1] = strs[i];
	strs[2 + argc] = NULL;
	strs[nstr + 1] = NULL;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0) {
		result(-1);
		return;
	}
	r.pipe = p[1];
	pid_t pid = clone(spawn_child, spawn_stack + sizeof(spawn_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &r);
	if (pid < 0 && errno == EINVAL)
		pid = clone(spawn_child, spawn_stack + sizeof(spawn_stack), CLONE_VFORK | SIGCHLD, &r);
	int err = errno;
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		errno = err;
		result(-1);
		return;
	}
	/* The child has executed or exited (CLONE_VFORK): its end is closed. */
	int32_t msg[2];
	ssize_t n;
	while ((n = read(p[0], msg, sizeof(msg))) < 0 && errno == EINTR)
		;
	close(p[0]);
	if (n == sizeof(msg)) {
		/* The child exits; reap() collects it without a report. */
		reply(XREP_RESULT, msg[1], -1, 0, msg[0], NULL, 0, -1);
		return;
	}
	command = pid;
	commandpg = (flags & XSPAWN_SETSID) ? pid : 0;
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	reply(XREP_RESULT, 0, pid, 0, 0, NULL, 0, pidfd);
	if (pidfd >= 0)
		close(pidfd);
}

static void op_fork_init(int *fds, int nfds)
{
	if (nfds != 1) {
		reply(XREP_RESULT, EBADMSG, -1, 0, 0, NULL, 0, -1);
		return;
	}
	pid_t pid = fork();
	if (pid < 0) {
		result(-1);
		return;
	}
	if (pid == 0) {
		/* PID 1 dies with the box process, and speaks on its own socket.
		 * It is non-dumpable as the executor is (fork keeps that; said
		 * again here, where it matters most). */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
			_exit(1);
		if (prctl(PR_SET_NAME, "stepbox-init", 0, 0, 0) < 0)
			_exit(1);
		title_self("stepbox-init");
		if (dup2(fds[0], SOCK_FD) < 0)
			_exit(1);
		fcntl(SOCK_FD, F_SETFD, FD_CLOEXEC);
		close(fds[0]);
		sock = SOCK_FD;
		command = commandpg = 0;
		is_init = getpid() == 1;
		if (watch_signals() < 0)
			_exit(1);
		return;
	}
	close(fds[0]);
	result(pid);
}

static void op_ifup(const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (strlen(name) >= IFNAMSIZ) {
		reply(XREP_RESULT, EINVAL, -1, 0, 1, NULL, 0, -1);
		return;
	}
	strcpy(ifr.ifr_name, name);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		reply(XREP_RESULT, errno, -1, 0, 1, NULL, 0, -1);
		return;
	}
	uint32_t step = 2;
	int rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (rc == 0) {
		step = 3;
		ifr.ifr_flags |= IFF_UP;
		rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	int err = errno;
	close(fd);
	reply(XREP_RESULT, rc < 0 ? err : 0, rc, ifr.ifr_flags, rc < 0 ? step : 0, NULL, 0, -1);
}

static void op_read(int fd, int close_after)
{
	ssize_t n, len = 0;
	if (fd < 0) {
		result(-1);
		return;
	}
	while (len < XMAX_DATA && (n = read(fd, dbuf + len, XMAX_DATA - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		len += n;
		if (!close_after)
			break; /* an fs context gives one message per read */
	}
	int err = n < 0 && len == 0 ? errno : 0;
	if (close_after)
		close(fd);
	reply(XREP_RESULT, err, err ? -1 : len, 0, 0, dbuf, len, -1);
}

/* parse checks a request and points strs at its strings. */
static int parse(ssize_t n, struct xreq *q)
{
	if (n < (ssize_t)sizeof(*q))
		return -1;
	memcpy(q, rbuf, sizeof(*q));
	if (q->nstr > sizeof(strs) / sizeof(strs[0]) - 2)
		return -1;
	size_t off = sizeof(*q);
	for (uint32_t i = 0; i < q->nstr; i++) {
		uint32_t len;
		if (off + sizeof(len) > (size_t)n)
			return -1;
		memcpy(&len, rbuf + off, sizeof(len));
		off += sizeof(len);
		if (len == 0 || len > (size_t)n - off || rbuf[off + len - 1] != '\0')
			return -1;
		strs[i] = rbuf + off;
		off += len;
	}
	return off == (size_t)n ? 0 : -1;
}

static int need(const struct xreq *q, uint32_t nstr)
{
	if (q->nstr >= nstr)
		return 1;
	reply(XREP_RESULT, EBADMSG, -1, 0, 0, NULL, 0, -1);
	return 0;
}

static void serve(const struct xreq *q, int *fds, int nfds)
{
	const int64_t *a = q->num;
	switch (q->op) {
	case XOP_HELLO:
		reply(XREP_RESULT, 0, getpid(), getppid(), 0, NULL, 0, -1);
		break;
	case XOP_UNSHARE:
		result(unshare(a[0]));
		break;
	case XOP_SETHOSTNAME:
		if (need(q, 1))
			result(sethostname(strs[0], strlen(strs[0])));
		break;
	case XOP_MOUNT:
		if (need(q, 4))
			result(mount(strs[0], strs[1], strs[2], a[0], opt(strs[3])));
		break;
	case XOP_UMOUNT2:
		if (need(q, 1))
			result(umount2(strs[0], a[0]));
		break;
	case XOP_PIVOT_ROOT:
		if (need(q, 2))
			result(syscall(SYS_pivot_root, strs[0], strs[1]));
		break;
	case XOP_CHDIR:
		if (need(q, 1))
			result(chdir(strs[0]));
		break;
	case XOP_FCHDIR:
		result(fchdir(a[0]));
		break;
	case XOP_CHROOT:
		if (need(q, 1))
			result(chroot(strs[0]));
		break;
	case XOP_MKDIR:
		if (need(q, 1))
			result(mkdir(strs[0], a[0]));
		break;
	case XOP_CHMOD:
		if (need(q, 1))
			result(chmod(strs[0], a[0]));
		break;
	case XOP_MKNOD:
		if (need(q, 1))
			result(mknod(strs[0], a[0], a[1]));
		break;
	case XOP_SYMLINK:
		if (need(q, 2))
			result(symlink(strs[0], strs[1]));
		break;
	case XOP_UNLINKAT:
		if (need(q, 1))
			result(unlinkat(a[0], strs[0], a[1]));
		break;
	case XOP_OPEN:
		if (need(q, 1))
			result(open(strs[0], a[0] | O_CLOEXEC, a[1]));
		break;
	case XOP_CLOSE:
		result(a[0] <= SOCK_FD || a[0] == sigfd ? (errno = EBADF, -1) : close(a[0]));
		break;
	case XOP_WRITE_FILE:
		if (need(q, 2)) {
			/* proc(5) files such as uid_map take one write(2). */
			int fd = open(strs[0], O_WRONLY | O_CLOEXEC);
			ssize_t n = fd < 0 ? -1 : write(fd, strs[1], strlen(strs[1]));
			int err = errno;
			if (fd >= 0)
				close(fd);
			errno = err;
			result(n < 0 ? -1 : n);
		}
		break;
	case XOP_READ_FILE:
		if (need(q, 1))
			op_read(open(strs[0], O_RDONLY | O_CLOEXEC), 1);
		break;
	case XOP_SETNS:
		if (nfds != 1)
			reply(XREP_RESULT, EBADMSG, -1, 0, 0, NULL, 0, -1);
		else
			result(setns(fds[0], a[0]));
		break;
	case XOP_FORK_INIT:
		op_fork_init(fds, nfds);
		return; /* the fd is the child's, or closed */
	case XOP_SPAWN:
		op_spawn(q, fds, nfds);
		break;
	case XOP_FSOPEN:
		if (need(q, 1))
			result(syscall(SYS_fsopen, strs[0], a[0]));
		break;
	case XOP_FSCONFIG:
		if (need(q, 2))
			result(syscall(SYS_fsconfig, a[0], a[1], opt(strs[0]), opt(strs[1]), a[2]));
		break;
	case XOP_FSMOUNT:
		result(syscall(SYS_fsmount, a[0], a[1], a[2]));
		break;
	case XOP_MOVE_MOUNT:
		if (need(q, 2))
			result(syscall(SYS_move_mount, a[0], strs[0], a[1], strs[1], a[2]));
		break;
	case XOP_READ_FD:
		op_read(a[0], 0);
		break;
	case XOP_PRCTL:
		result(prctl(a[0], a[1], 0, 0, 0));
		break;
	case XOP_IFUP:
		if (need(q, 1))
			op_ifup(strs[0]);
		break;
	case XOP_STAT:
		if (need(q, 1)) {
			struct stat st;
			if (stat(strs[0], &st) < 0)
				result(-1);
			else
				reply(XREP_RESULT, 0, st.st_dev, st.st_ino, 0, NULL, 0, -1);
		}
		break;
	case XOP_SETRESUID:
		result(setresuid(a[0], a[0], a[0]));
		break;
	case XOP_SETRESGID:
		result(setresgid(a[0], a[0], a[0]));
		break;
	case XOP_SETGROUPS:
		result(setgroups(0, NULL));
		break;
	case XOP_OPEN_TREE:
		/* open_tree(2) with OPEN_TREE_CLONE: a detached copy of a mount,
		 * kept as an fd past pivot_root (no glibc wrapper before 2.36). */
		if (need(q, 1))
			result(syscall(SYS_open_tree, a[0], strs[0], a[1]));
		break;
	case XOP_MOUNT_SETATTR:
		if (need(q, 1)) {
			/* struct mount_attr of linux/mount.h, which clashes with
			 * glibc's sys/mount.h: propagation and userns_fd unused. */
			uint64_t attr[4] = { a[2], a[3], 0, 0 };
			result(syscall(SYS_mount_setattr, a[0], strs[0], a[1], attr, sizeof(attr)));
		}
		break;
	case XOP_UNAME: {
		struct utsname u;
		if (uname(&u) < 0)
			result(-1);
		else
			reply(XREP_RESULT, 0, 0, 0, 0, u.nodename, strlen(u.nodename), -1);
		break;
	}
	default:
		reply(XREP_RESULT, ENOSYS, -1, 0, 0, NULL, 0, -1);
	}
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
}

/* receive reads one request; it returns 0 when the session has gone. */
static int receive(void)
{
	char cbuf[CMSG_SPACE(XMAX_FDS * sizeof(int))];
	struct iovec iov = { rbuf, sizeof(rbuf) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return 0;
	int fds[XMAX_FDS], nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (int i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < XMAX_FDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	struct xreq q;
	if ((m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || parse(n, &q) < 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		reply(XREP_RESULT, EBADMSG, -1, 0, 0, NULL, 0, -1);
		return 1;
	}
	if (session_gone()) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		return 0;
	}
	serve(&q, fds, nfds);
	return 1;
}

static void executor(void)
{
	/* Descriptors 0-2 are the session's to give: closed ones become
	 * /dev/null, so no received descriptor lands on them. */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			_exit(1);
	/* Die with the parent: the session, or for PID 1 the box process. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		_exit(1);
	/* Non-dumpable, as runc init is: once the box has a user namespace of
	 * its own or lacks CAP_SYS_PTRACE, it may not ptrace this process,
	 * open its /proc/PID/mem, fd/N or exe, or pidfd_getfd its socket
	 * (ptrace(2), "Ptrace access mode checking"). execve(2) makes the
	 * commands it starts dumpable again. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		_exit(1);
	if (fcntl(SOCK_FD, F_SETFD, FD_CLOEXEC) < 0)
		_exit(1);
	if (watch_signals() < 0)
		_exit(1);
	for (;;) {
		struct pollfd p[2] = { { sock, POLLIN, 0 }, { sigfd, POLLIN, 0 } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (p[1].revents & POLLIN)
			on_signal();
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			if (!receive())
				_exit(0);
		}
	}
}

/* The descriptor on which a rootless box process waits for its maps. */
#define MAP_FD 4

/* A rootless box whose user namespace maps a subordinate range: cloned
 * into the namespace before any map, it was no one there at its execve(2)
 * and kept no capability (capabilities(7), "Capabilities and execution of
 * programs by root"). It waits until the session has run newuidmap(1) and
 * newgidmap(1) on it (it says it is ready with one byte on MAP_FD, a
 * socket, and the session answers with one), then executes itself again as
 * the uid 0 it now is, which gives it every capability of its namespace. */
static void exec_mapped(char **argv, char **envp)
{
	char c;
	ssize_t n;
	/* Executed while its owner was unmapped, it is non-dumpable
	 * (execve(2): the binary's owner has no ID in the namespace), which
	 * makes /proc/PID/uid_map root's: newuidmap opens it as the learner.
	 * Nothing of the box runs yet; the next execve sets it again. */
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		_exit(1);
	c = 1;
	while ((n = write(MAP_FD, &c, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(1);
	while ((n = read(MAP_FD, &c, 1)) < 0 && errno == EINTR)
		;
	if (n != 1)
		_exit(1);
	close(MAP_FD);
	/* stepbox __boxmapped ENTRY ARGS… runs as stepbox ENTRY ARGS… */
	argv[1] = argv[0];
	execve("/proc/self/exe", argv + 1, envp);
	_exit(1);
}

/* A process's name (comm, what ps -e, top and pgrep show) is the base
 * name of the file it executed: the sealed copy run as /proc/self/fd/N
 * would be called "N". It gets a name the learner recognises instead, at
 * most 15 bytes (prctl(2), PR_SET_NAME); PID 1 inherits it and renames
 * itself (op_fork_init). */
static void name_self(const char *name)
{
	if (prctl(PR_SET_NAME, name, 0, 0, 0) < 0)
		_exit(1);
}

/* The box process's command line, "stepbox __box NAME" as executed, is
 * what ps shows as its COMMAND (and busybox ps as "{comm} stepbox __box
 * NAME", the comm differing from argv[0]). It is rewritten in place to
 * "PROG NAME", PROG the comm: "stepbox-box web" outside, PID 1's
 * "stepbox-init web" inside; both fit in what "stepbox __box " took. */
static char *args, *boxname;
static size_t argslen;

static void title_self(const char *prog)
{
	if (!args || !boxname)
		return;
	size_t p = strlen(prog) + 1, n = strlen(boxname) + 1;
	if (p + n > argslen)
		return;
	memset(args, 0, argslen);
	memcpy(args, prog, p);
	memcpy(args + p, boxname, n);
}

static void keep_args(int argc, char **argv)
{
	/* The kernel lays argv out end to end: the area is from argv[0] to
	 * the NUL of the last. */
	for (int i = 1; i < argc; i++)
		if (argv[i] != argv[i - 1] + strlen(argv[i - 1]) + 1)
			return;
	args = argv[0];
	argslen = argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0];
	boxname = strdup(argv[2]);
}

/* The escape probes (`stepbox __probe`, box_probe.go) run in the box with
 * its credentials and report on it. Dumpable, as execve(2) made them, any
 * process of the box with the same uid could ptrace one and make its
 * syscalls fail, or open its /proc/PID/fd/1, with no capability at all
 * (ptrace(2), "Ptrace access mode checking"), after caps docker, nnp and
 * seccomp docker too (ut31 F3). Non-dumpable, only a process with
 * CAP_SYS_PTRACE over the box's user namespace may: this is the first
 * constructor of the executable (priority 101 runs before the others),
 * so that nothing of stepbox's runs first.
 *
 * What this does not cover: the moment between the execve(2) and this
 * prctl(2), in which the dynamic loader maps stepbox and its libraries
 * and their own constructors run (static, libc's start-up alone): a box
 * process that polls for the probe catches it nearly every time. One
 * that attaches then stays attached (this prctl does not detach it): the
 * session, outside the box, reads the probe's TracerPid while it runs
 * (box_probe_trace.go) and refuses the report of a probe it saw traced,
 * so such a box can make `probe` say unknown, not make it lie by
 * failing its syscalls. Not seen: a tracer that attaches in that moment
 * and detaches before the session's first look, having changed the
 * probe's memory; and a box that keeps CAP_SYS_PTRACE and attaches
 * between two looks. Closing that takes a probe that is never dumpable
 * at all, such as one the session itself traces from before its
 * execve(2). */
__attribute__((constructor(101))) static void stepbox_probe(int argc, char **argv, char **envp)
{
	(void)envp;
	if (argc >= 2 && strcmp(argv[1], "__probe") == 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		_exit(1);
}

/* glibc passes argc, argv and envp to constructors. */
__attribute__((constructor)) static void stepbox_executor(int argc, char **argv, char **envp)
{
	if (argc >= 3 && strcmp(argv[1], "__boxmapped") == 0) {
		name_self("stepbox-box");
		exec_mapped(argv, envp);
	}
	if (argc >= 3 && strcmp(argv[1], "__box") == 0) {
		name_self("stepbox-box");
		keep_args(argc, argv);
		title_self("stepbox-box");
		executor();
	}
	if (argc >= 2 && strcmp(argv[1], "__enter") == 0) {
		name_self("stepbox-enter");
		xenter(argc, argv);
	}
}
