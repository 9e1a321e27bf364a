/* The wire format between the session (Go, executor.go) and the box's
 * executor (C, executor.c). One request per SOCK_SEQPACKET packet:
 *
 *   struct xreq, then nstr strings, each a uint32 length (counting its
 *   terminating NUL) followed by the bytes and the NUL;
 *   file descriptors beside it as SCM_RIGHTS.
 *
 * One reply per request (struct xrep, then data bytes for the ops that
 * read), plus one XREP_EXITED reply when a spawned command ends. */
#ifndef STEPBOX_EXECUTOR_H
#define STEPBOX_EXECUTOR_H

#include <stdint.h>

enum xop {
	XOP_HELLO = 1,
	XOP_UNSHARE,      /* num0 flags */
	XOP_SETHOSTNAME,  /* str0 name */
	XOP_MOUNT,        /* str0 source, str1 target, str2 fstype, str3 data; num0 flags ("" is NULL) */
	XOP_UMOUNT2,      /* str0 target; num0 flags */
	XOP_PIVOT_ROOT,   /* str0 new_root, str1 put_old */
	XOP_CHDIR,        /* str0 path */
	XOP_FCHDIR,       /* num0 fd */
	XOP_CHROOT,       /* str0 path */
	XOP_MKDIR,        /* str0 path; num0 mode */
	XOP_CHMOD,        /* str0 path; num0 mode */
	XOP_MKNOD,        /* str0 path; num0 mode, num1 dev */
	XOP_SYMLINK,      /* str0 target, str1 linkpath */
	XOP_UNLINKAT,     /* num0 dirfd, str0 path, num1 flags */
	XOP_OPEN,         /* str0 path; num0 flags, num1 mode -> val fd */
	XOP_CLOSE,        /* num0 fd */
	XOP_WRITE_FILE,   /* str0 path, str1 data */
	XOP_READ_FILE,    /* str0 path -> data */
	XOP_SETNS,        /* fd[0] the namespace; num0 nstype */
	XOP_FORK_INIT,    /* fd[0] the child's socket -> val child PID */
	XOP_SPAWN,        /* fd[0..2] stdio, with XSPAWN_EXECFD fd[3] the file to run and fd[4…] the command's 3…; num0 XSPAWN_*, num1 argc, num2 uid, num3 gid; str0 path, str1 cwd, argv…, envp… -> val PID, a pidfd */
	XOP_FSOPEN,       /* str0 fsname; num0 flags -> val fd */
	XOP_FSCONFIG,     /* num0 fd, num1 cmd, num2 aux; str0 key, str1 value ("" is NULL) */
	XOP_FSMOUNT,      /* num0 fd, num1 flags, num2 attr -> val fd */
	XOP_MOVE_MOUNT,   /* num0 from_dfd, num1 to_dfd, num2 flags; str0 from_path, str1 to_path */
	XOP_READ_FD,      /* num0 fd -> data (one read) */
	XOP_PRCTL,        /* num0 option, num1 arg2 */
	XOP_IFUP,         /* str0 interface: SIOCGIFFLAGS, then SIOCSIFFLAGS with IFF_UP */
	XOP_STAT,         /* str0 path -> val st_dev, val2 st_ino */
	XOP_UNAME,        /* -> data: the nodename of the executor's UTS namespace */
	XOP_SETRESUID,    /* num0 uid: setresuid(uid, uid, uid) */
	XOP_SETRESGID,    /* num0 gid: setresgid(gid, gid, gid) */
	XOP_SETGROUPS,    /* setgroups(0, NULL) */
	XOP_MOUNT_SETATTR, /* num0 dirfd, num1 flags, num2 attr_set, num3 attr_clr; str0 path */
	XOP_OPEN_TREE,    /* num0 dirfd, num1 flags; str0 path -> val fd */
	XOP_MAX
};

enum {
	XSPAWN_SETSID = 1,     /* setsid(): a session of its own (no controlling terminal but XSPAWN_CTTY's) */
	XSPAWN_SETID = 4,      /* setgroups(0, NULL), setresgid(num3…), setresuid(num2…) */
	XSPAWN_SECURITY = 8,   /* the last string is a struct xsec, in hex */
	XSPAWN_EXECFD = 16,    /* execveat(fd[3], "", AT_EMPTY_PATH) instead of execve(str0); fd[4…] become 3… */
	XSPAWN_CTTY = 32,      /* after setsid: ioctl(0, TIOCSCTTY, 0), fd 0 being a pty of the command's own */
};

/* The settings a spawned or entered command gets just before execve, in
 * runc's order: rlimits, the bounding set, no_new_privs, the uid and gid
 * (with PR_SET_KEEPCAPS), capset, the ambient set, seccomp last. Sent as
 * hex (a request's strings end at a NUL): struct xsec, then nrlimit
 * struct xrlimit, then nfilter struct sock_filter. */
enum {
	XSEC_CAPS = 1, /* apply cap[]; else the command keeps the executor's sets */
	XSEC_NNP = 2,  /* prctl(PR_SET_NO_NEW_PRIVS, 1) */
};
enum { XCAP_BOUNDING, XCAP_PERMITTED, XCAP_EFFECTIVE, XCAP_INHERITABLE, XCAP_AMBIENT, XCAP_SETS };

struct xsec {
	uint64_t cap[XCAP_SETS];
	uint32_t flags;   /* XSEC_* */
	uint32_t lastcap; /* /proc/sys/kernel/cap_last_cap */
	uint32_t nrlimit;
	uint32_t nfilter; /* 0: no seccomp filter */
};

struct xrlimit {
	uint32_t resource;
	uint32_t pad;
	uint64_t cur, max;
};

/* Which call of the settings failed: the step of an XOP_SPAWN reply, or
 * of an __enter status. */
enum {
	XSEC_STEP_DECODE = 20,
	XSEC_STEP_RLIMIT,
	XSEC_STEP_SECCOMP,
	XSEC_STEP_BOUNDING,
	XSEC_STEP_NNP,
	XSEC_STEP_KEEPCAPS,
	XSEC_STEP_CLEARKEEPCAPS,
	XSEC_STEP_CAPSET,
	XSEC_STEP_AMBIENT_CLEAR,
	XSEC_STEP_AMBIENT_RAISE,
	XSEC_STEP_CGROUP, /* __enter: write(cgroup.procs, "0") */
};

enum { XREP_RESULT = 0, XREP_EXITED = 1 };

/* `stepbox __enter FLAGS STATUS NCGROUP SECURITY NSTYPE… -- DIR PATH ARGV…`:
 * descriptors 3… are NCGROUP cgroup.procs files the process joins first,
 * then the namespace files, in the order of the NSTYPEs; SECURITY is a
 * struct xsec in hex, or "-" for none; DIR, when not empty, is where the
 * command starts (an image's WorkingDir), resolved after the setns calls,
 * in the box's root (XENTER_BOXROOT); a failure is
 * written to the descriptor STATUS as two int32s, the step (XENTER_*, or
 * the 1-based index of the setns) and errno. Once the command has ended,
 * XENTER_WAITED and its wait status, then, if this process passed a
 * signal on to it, XENTER_PASSED and that signal. The process's own
 * environment is stepbox's, never the box's: with XENTER_ENV, descriptor
 * STATUS+1 holds the command's, NUL-terminated strings, given only to its
 * execve (the host's loader would honour an image's LD_PRELOAD). With
 * XENTER_BOXROOT, descriptor STATUS+2 is the box's root, /proc/PID/root
 * opened with the namespace files: setns(CLONE_NEWNS) leaves a process at
 * its mount namespace's root, which after a chroot is not the box's
 * (setns(2)), so the command fchdir(2)s there and chroot(".")s, as
 * nsenter --root does. */
enum {
	XENTER_ROOT = 2, /* after the setns calls, become uid and gid 0 */
	XENTER_NOGROUPS = 4, /* … and drop the supplementary groups first */
	XENTER_CTTY = 8, /* after the command's setsid: ioctl(0, TIOCSCTTY, 0) */
	XENTER_IDS = 16, /* FLAGS is "FLAGS:UID:GID": the command runs as them (an image's User) */
	XENTER_ENV = 32, /* descriptor STATUS+1: the command's environment */
	XENTER_BOXROOT = 64, /* descriptor STATUS+2: the box's root, the command's / */
};
#define XENTER_MAX_ENV (2 << 20) /* bytes of the command's environment: ARG_MAX under an 8 MiB stack */
enum {
	XENTER_SETGROUPS = 100,
	XENTER_SETRESGID,
	XENTER_SETRESUID,
	XENTER_FORK,
	XENTER_EXECVE,
	XENTER_SETSID, /* the command's setsid() */
	XENTER_TIOCSCTTY, /* the command's ioctl(0, TIOCSCTTY, 0) */
	XENTER_IDS_SETGROUPS, /* the command's setgroups(0, NULL) before XENTER_IDS */
	XENTER_IDS_SETRESGID,
	XENTER_IDS_SETRESUID,
	XENTER_ENVIRON, /* reading the command's environment (XENTER_ENV) */
	XENTER_CHDIR, /* the command's chdir(DIR) */
	XENTER_FCHDIR, /* the command's fchdir(STATUS+2), to the box's root */
	XENTER_CHROOT, /* the command's chroot(".") there */
	XENTER_WAITED = 200, /* not a failure: the command's wait status */
	XENTER_PASSED, /* not a failure: the signal passed on to the command */
};

/* executor_security.c: decode before fork, apply in the child; each
 * apply returns 0 or the XSEC_STEP_* that failed, errno set. */
void xsec_clear(void);
int xsec_decode(const char *hex);
uint32_t xsec_before_ids(void);
uint32_t xsec_after_ids(void);
uint32_t xsec_last(void);

/* executor_enter.c: `stepbox __enter …` (above); never returns. */
void xenter(int argc, char **argv);

#define XNUMS 4
#define XMAX_FDS 8
#define XMAX_MSG (1 << 20)
#define XMAX_DATA (1 << 16)
#define XMAX_ARGS 4096

struct xreq {
	uint32_t op;
	uint32_t nstr;
	int64_t num[XNUMS];
};

struct xrep {
	int32_t kind;  /* XREP_* */
	int32_t err;   /* errno of the failed syscall, 0 on success */
	int64_t val;   /* the syscall's result (fd, PID), or the exited PID */
	int64_t val2;  /* XREP_EXITED: the wait status; XOP_STAT: st_ino */
	uint32_t step; /* which syscall of a multi-call op failed (XOP_SPAWN, XOP_IFUP), from 1 */
	uint32_t len;  /* data bytes that follow */
};

#endif
