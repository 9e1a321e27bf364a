package repl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/inroot"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
	"stepbox/viz"
)

// The failure explainer: when a step fails, stepbox prints the kernel's
// own words (the syscall and its errno, as strace would), then the rule
// that was broken and what to do about it, from the table of known
// causes below.

// failure is what a failed command tells the explainer.
type failure struct {
	cmd     string     // the stepbox command: "pivot_root", "cgroup set"
	call    string     // the failed syscall in strace form, "" when unknown
	errno   unix.Errno // 0 when the kernel said nothing
	msg     string     // the whole error as printed
	pivot   rootfs.PivotRule
	user    bool // the current box has a user namespace of its own
	pid     bool // … and a PID namespace of its own
	pivoted bool // … and its root changed (pivot_root): the host's is gone from its mounts
	net     bool // … and a network namespace of its own
	mnt     bool // … and a mount namespace of its own
	// cgroupNS: … and a cgroup namespace of its own
	cgroupNS bool
	// chrooted: the box's root changed by chroot; with pivoted, false
	// means the box still uses the host's root.
	chrooted bool
	// hostProc: the box has a PID namespace, but the /proc its commands
	// see is one the session is visible in: the host's.
	hostProc bool
	root     bool // stepbox runs as uid 0
	taskCap  bool // a fork refused at stepbox's cap for all boxes (primitives.TaskCapError)
	exit     *ExitError
}

// syscall is the name of the failed call: "write" of write(5, "abc", 3).
func (f *failure) syscall() string {
	name, _, _ := strings.Cut(f.call, "(")
	return name
}

// says reports whether the error's text mentions s.
func (f *failure) says(s string) bool { return strings.Contains(f.msg, s) }

// denied reports whether a failed exec's command wrote the text of EACCES
// (strerror's "Permission denied", util-linux's "permission denied") to
// its stderr, and its stderr mentions each of also.
func (f *failure) denied(also ...string) bool {
	if f.exit == nil || !strings.Contains(strings.ToLower(f.exit.Stderr), "permission denied") {
		return false
	}
	for _, a := range also {
		if !strings.Contains(f.exit.Stderr, a) {
			return false
		}
	}
	return true
}

// execOf reports whether the failure is an exec of one of the programs.
func (f *failure) execOf(programs ...string) bool {
	if f.exit == nil {
		return false
	}
	name, ok := strings.CutPrefix(f.exit.Cmd, "exec ")
	return ok && slices.Contains(programs, filepath.Base(name))
}

// nsenterRefused reports whether a host command `!nsenter` was refused
// joining a namespace (setns EPERM) or setting its groups: nsenter(1)
// says "reassociate to namespace 'ns/uts' failed: Operation not
// permitted", or "setgroups failed" after -U without
// --preserve-credentials.
func (f *failure) nsenterRefused() bool {
	if f.exit == nil || f.exit.Cmd != "!nsenter" {
		return false
	}
	said := strings.ToLower(f.exit.Stderr)
	return strings.Contains(said, "not permitted") && (strings.Contains(said, "reassociate to namespace") || strings.Contains(said, "setgroups"))
}

// cause is one known way a step fails: which call, which errno, in which
// context (when), the kernel rule it broke and what to do.
type cause struct {
	name  string
	calls []string   // syscall names it applies to; none: any
	errno unix.Errno // 0: any, or none
	when  func(f *failure) bool
	rule  string
	do    string
}

func (c cause) matches(f *failure) bool {
	if c.errno != 0 && c.errno != f.errno {
		return false
	}
	if len(c.calls) > 0 && !slices.Contains(c.calls, f.syscall()) {
		return false
	}
	return c.when == nil || c.when(f)
}

var mountCalls = []string{"mount", "fsconfig", "fsmount", "move_mount"}

// causes is the table, most specific first: the first that matches wins.
var causes = []cause{
	{
		name: "nsenter into a box's namespaces without its user namespace",
		when: (*failure).nsenterRefused,
		rule: "setns(2) needs CAP_SYS_ADMIN in the user namespace that owns the namespace joined: a box's own (every rootless box has one) owns its namespaces, and a shell of the host, root of nothing there, has none; nsenter -U joins that user namespace first, as its root",
		do:   "join the box's user namespace too, keeping your groups (a rootless box may not set them): `!nsenter -t $BOX_PID -U --preserve-credentials -m -p -u /bin/sh -c hostname`; or stepbox's `enter`, which does that for you",
	},
	{
		name: "pivot_root on a shared mount", calls: []string{"pivot_root"}, errno: unix.EINVAL,
		when: func(f *failure) bool { return f.pivot == rootfs.PivotSharedMount },
		rule: "pivot_root(2) refuses (EINVAL) while the new root's parent mount or the current root has shared propagation: the move would propagate to their peers, and systemd makes / shared",
		do:   "make the box's mounts private first, `mount --make-rprivate /` in its mount namespace (stepbox's pivot_root does it: something changed the propagation since)",
	},
	{
		name: "pivot_root into a directory that is not a mount point", calls: []string{"pivot_root"},
		when: func(f *failure) bool { return f.pivot == rootfs.PivotNotMountPoint },
		rule: "new_root must be a mount point of its own, not a directory on the current root's mount (EINVAL, or EBUSY when they share a mount)",
		do:   "bind-mount it onto itself first, `mount --bind DIR DIR`; `mount overlay` makes the box's new root a mount point",
	},
	{
		name: "pivot_root after chroot", calls: []string{"pivot_root"}, errno: unix.EINVAL,
		when: func(f *failure) bool { return f.pivot == rootfs.PivotRootNotMountPoint },
		rule: "pivot_root(2) needs the caller's root to be a mount point; after chroot into a plain directory it is not",
		do:   "pivot_root from a box that never ran chroot: `rm` this one and build a new one",
	},
	{
		name: "pivot_root in the host's mount namespace",
		when: func(f *failure) bool { return f.pivot == rootfs.PivotNoMountNamespace },
		rule: "pivot_root changes the root of every process in the caller's mount namespace: in the host's, that is every process on the host",
		do:   "`unshare mnt` first, so the box has a mount namespace of its own",
	},
	{
		name: "unshare user in a chroot", calls: []string{"unshare"}, errno: unix.EPERM,
		when: func(f *failure) bool { return f.says("CLONE_NEWUSER") },
		rule: "the kernel refuses a new user namespace to a process in a chroot (unshare(2), EPERM): its capabilities there would let it walk out of the chroot; pivot_root does not count",
		do:   "`unshare user` before `chroot`, or build the box with pivot_root instead",
	},
	{
		name: "mount sysfs in a user namespace after pivot_root", calls: mountCalls, errno: unix.EPERM,
		when: func(f *failure) bool { return f.user && f.pivoted && f.says("sysfs") },
		rule: "in a user namespace, the kernel mounts a new sysfs only where one is already fully visible in the mount namespace, and pivot_root detached the host's (mount_too_revealing() in fs/namespace.c)",
		do:   "build a new box and `mount sys` before pivot_root, after `unshare net`",
	},
	{
		name: "mount sysfs in a user namespace without a network namespace", calls: mountCalls, errno: unix.EPERM,
		when: func(f *failure) bool { return f.user && !f.net && f.says("sysfs") },
		rule: "in a user namespace, sysfs may be mounted only by a process whose network namespace that user namespace owns",
		do:   "`unshare net` first, then `mount sys`",
	},
	{
		name: "mount proc in a user namespace after pivot_root", calls: mountCalls, errno: unix.EPERM,
		when: func(f *failure) bool { return f.user && f.pid && f.pivoted && f.says(`"proc"`) },
		rule: "in a user namespace, the kernel mounts a new proc only where one is already fully visible in the mount namespace, and pivot_root detached the host's (mount_too_revealing() in fs/namespace.c)",
		do:   "the box has its /proc already: pivot_root mounted it before detaching the old root; to mount another, build a new box and mount it before pivot_root",
	},
	// A mount step makes its missing mount point (rootfs's mkdir), as
	// the box's root: in a user namespace the layers' directories are the
	// host root's, whom the box's uid_map does not map (ut34 F7).
	{
		name: "cgroup's mount point under the layers' /sys, with a cgroup namespace", calls: []string{"mkdir", "mkdirat"}, errno: unix.EACCES,
		when: func(f *failure) bool { return f.user && f.cgroupNS && f.cmd == "mount cgroup" && f.says("/sys") },
		rule: mkdirLayerRule("/sys, where `mount cgroup` makes /sys/fs/cgroup, is the base layer's"),
		do:   "give /sys a filesystem the box's root owns first: `mount tmpfs /sys`, then `mount cgroup`; or, before pivot_root, `mount sys` (after `unshare net`)",
	},
	{
		name: "cgroup's mount point under the layers' /sys", calls: []string{"mkdir", "mkdirat"}, errno: unix.EACCES,
		when: func(f *failure) bool { return f.user && f.cmd == "mount cgroup" && f.says("/sys") },
		rule: mkdirLayerRule("/sys, where `mount cgroup` makes /sys/fs/cgroup, is the base layer's"),
		do:   "`unshare cgroup` (in a user namespace the kernel mounts cgroup only for a cgroup namespace the box owns), then give /sys a filesystem the box's root owns: `mount tmpfs /sys`, then `mount cgroup`; or, before pivot_root, `mount sys` (after `unshare net`)",
	},
	{
		name: "a mount point under the layers' directories", calls: []string{"mkdir", "mkdirat"}, errno: unix.EACCES,
		when: func(f *failure) bool { return f.user && strings.HasPrefix(f.cmd, "mount") },
		rule: mkdirLayerRule("the directory stepbox makes the mount point in is one of the layers'"),
		do:   "mount at a directory that exists, or below one the box's root owns (`exec ls -ld DIR`: the layers' show as nobody), such as a `mount tmpfs` of the box's",
	},
	{
		name: "an overlay out of a remapped root's reach", calls: mountCalls, errno: unix.EACCES,
		when: func(f *failure) bool { return f.user && f.says("overlay") },
		rule: "in a user namespace the kernel checks the overlay's layer, upper and work dirs as the box's root, which is another uid on the host (the box's uid_map): stepbox's state dirs are root's, mode 0700, so that uid may not even reach them",
		do:   "as root, build the filesystem in a box made with `new NAME --user`, whose uid 0 maps to yours; stepbox gives a remapped box no idmapped layers",
	},
	{
		name: "mount proc in a user namespace without a PID namespace", calls: mountCalls, errno: unix.EPERM,
		when: func(f *failure) bool { return f.user && !f.pid && f.says(`"proc"`) },
		rule: "in a user namespace, proc may be mounted only for a PID namespace that user namespace owns, by a process inside it",
		do:   "`unshare pid` first; the box's PID 1 mounts /proc (pivot_root does it when the box has one)",
	},
	{
		name: "a namespace owned by another user namespace", calls: []string{"unshare", "sethostname", "setns", "mount", "umount2", "pivot_root", "chroot"}, errno: unix.EPERM,
		when: func(f *failure) bool { return f.user || f.cmd == "enter" },
		rule: "the capability a namespace operation needs (CAP_SYS_ADMIN, CAP_SYS_CHROOT) counts only in the user namespace that owns the namespace; the box's capabilities do not reach the host's namespaces, nor the session's the box's",
		do:   "change only what the box's own user namespace owns: `unshare` the namespace inside the box first; to join from the host, run stepbox as root",
	},
	{
		name: "a missing capability", calls: []string{"unshare", "sethostname", "setns", "mount", "umount2", "pivot_root", "chroot", "clone", "mknod"}, errno: unix.EPERM,
		when: func(f *failure) bool { return !f.root },
		rule: "this call needs a capability in the user namespace that owns what it changes: CAP_SYS_ADMIN for namespaces, mounts and the hostname, CAP_SYS_CHROOT for chroot, CAP_MKNOD for devices; a process of an ordinary user has none in the host's",
		do:   "run stepbox as root, or start the box with `new NAME --user`: uid 0 of a user namespace of its own holds them over the namespaces it makes",
	},
	{
		name: "fork refused at stepbox's cap for all boxes", errno: unix.EAGAIN,
		when: func(f *failure) bool { return f.taskCap },
		rule: "every box of a session counts against one pids.max, on stepbox's parent cgroup, so that a fork bomb in one box cannot take the tasks the session and the host need; once the boxes together hold that many, every fork(2) and clone(2) in any box fails with EAGAIN, whatever the box's own cgroup allows",
		do:   "the error names the boxes holding the tasks: `rm` the one that fills the cap, or end processes in it; `!cat` the pids.current beside that pids.max to watch it",
	},
	{
		name: "fork refused at pids.max", errno: unix.EAGAIN,
		when: func(f *failure) bool { return f.exit == nil },
		rule: "fork(2) and clone(2) fail with EAGAIN once the box's cgroup holds pids.max tasks (every thread counts), or the user's RLIMIT_NPROC is reached",
		do:   "`cgroup` shows pids against the limit; raise it with `cgroup limit pids N` (or max), or end processes first",
	},
	{
		name: "ps with the host's /proc in a PID namespace",
		when: func(f *failure) bool { return f.exit != nil && f.hostProc && readsProc(f.exit.Cmd) },
		rule: "ps and top read /proc, and the box's /proc is still the host's: it shows the host's processes, and one in the box's PID namespace finds no /proc/self there (procps' ps says \"fatal library error, lookup self\")",
		do:   "give the box its own: `pivot_root` mounts it, or `mount proc /proc` after `unshare mnt`",
	},
	{
		name: "a command stopped by pids.max",
		when: func(f *failure) bool { return f.exit != nil && f.exit.Hits.PidsRefused > 0 },
		rule: "the box's cgroup reached pids.max: the kernel refused the command's fork(2)s with EAGAIN (a shell says \"can't fork\"), and it gave up",
		do:   "raise the limit with `cgroup limit pids N` (or max); `cgroup` shows pids.current against pids.max and the refusals",
	},
	{
		name: "a command killed by the OOM killer",
		when: func(f *failure) bool { return f.exit != nil && f.exit.Hits.OOMKills > 0 },
		rule: "the box's cgroup reached its memory limit and reclaim could not free enough: the kernel's OOM killer sent SIGKILL to a process in it",
		do:   "raise the limit with `cgroup limit memory SIZE`, or make the command need less; `cgroup` shows usage against the limit and the oom_kill count",
	},
	// A command run with exec meets the kernel's checks as the box's root,
	// which holds capabilities only over what the box's user namespace
	// owns: while the box still shares a namespace or the root with the
	// host, the kernel refuses it there, and the command says only
	// "Permission denied".
	{
		name: "a low port in the host's network namespace",
		when: func(f *failure) bool { return f.user && !f.net && f.denied("bind") },
		rule: "a port below net.ipv4.ip_unprivileged_port_start (1024 unless changed) needs CAP_NET_BIND_SERVICE in the user namespace that owns the network namespace; the box still shares the host's, and its root holds capabilities only in its own user namespace",
		do:   "`unshare net` first: the box's root owns its new network namespace and binds any port there, its own port 80 beside the host's",
	},
	{
		name: "a mount in the host's mount namespace",
		when: func(f *failure) bool { return f.user && !f.mnt && f.execOf("mount", "umount") && f.denied() },
		rule: "mount(2) needs CAP_SYS_ADMIN in the user namespace that owns the mount namespace; the box still shares the host's, where its root is an ordinary user",
		do:   "`unshare mnt` first: the box's root owns its new mount namespace and mounts there, out of the host's sight",
	},
	{
		name: "a file of the host's root",
		when: func(f *failure) bool { return f.user && !f.pivoted && !f.chrooted && f.denied() },
		rule: "the box's / is still the host's (no pivot_root or chroot yet), and its root is root only in its own user namespace: on the host it is an ordinary uid (`!cat /proc/$BOX_PID/uid_map`), so the host's files keep their owners and modes against it",
		do:   "`mount overlay base` and `pivot_root` (after `unshare mnt`) first: then / is the box's own overlay, owned by its root",
	},
	{
		name: "fork in a PID namespace whose PID 1 has exited", calls: []string{"clone", "fork", "execve"}, errno: unix.ENOMEM,
		rule: "a PID namespace whose PID 1 has exited takes no new process: fork(2) fails with ENOMEM (pid_namespaces(7))",
		do:   "this box can run nothing more: `rm` it and make a new one",
	},
	{
		name: "rmdir of a cgroup still in use", calls: []string{"rmdir"}, errno: unix.EBUSY,
		rule: "a cgroup can be removed only when it holds no process and no child cgroup (rmdir(2): EBUSY)",
		do:   "end its processes or move them to another cgroup's cgroup.procs, remove the child cgroups first; `stepbox cleanup` does it for a crashed session",
	},
	{
		name: "controllers switched on above processes (cgroup v2)", calls: []string{"write"}, errno: unix.EBUSY,
		when: func(f *failure) bool { return f.says("subtree_control") || f.says("cgroup.procs") },
		rule: "cgroup v2 lets no cgroup but the root hold processes while it hands controllers to its children (the no-internal-processes rule, cgroups(7))",
		do:   "put processes only in leaf cgroups, and switch controllers on only in cgroups without processes",
	},
	{
		name: "a full state dir", errno: unix.ENOSPC,
		when: func(f *failure) bool { return f.says("ledger") || f.says("state dir") },
		rule: "stepbox writes every resource to its ledger before making it, and the filesystem holding its state dir has no space left (ENOSPC): nothing was made",
		do:   "free space there (`!df` shows it), or start stepbox with --state-dir on a filesystem with room",
	},
	{
		name: "attach to a cpuset with no CPUs (cgroup v1)", calls: []string{"write"}, errno: unix.ENOSPC,
		when: func(f *failure) bool { return strings.HasPrefix(f.cmd, "cgroup") || f.says("/sys/fs/cgroup") },
		rule: "a v1 cpuset cgroup whose cpuset.cpus or cpuset.mems is empty takes no task (ENOSPC)",
		do:   "fill them from the parent: `cgroup set cpuset.cpus 0-1`, `cgroup set cpuset.mems 0`",
	},
	{
		name: "a process that has exited", calls: []string{"write"}, errno: unix.ESRCH,
		rule: "a PID written to cgroup.procs must name a live process",
		do:   "the process ended before it could be moved: `ps` shows what runs now",
	},
	{
		name: "a v1 memory limit above its memory+swap limit", calls: []string{"write"}, errno: unix.EINVAL,
		when: func(f *failure) bool {
			return f.says("memory.limit_in_bytes") && !f.says("memsw") && sizeWritten.MatchString(f.msg)
		},
		rule: "on cgroup v1, memory.limit_in_bytes may not exceed memory.memsw.limit_in_bytes (memory plus swap), which `cgroup limit memory` sets to the same value",
		do:   "raise memory.memsw.limit_in_bytes first (`cgroup set memory.memsw.limit_in_bytes 64M`), or use `cgroup limit memory 64M`, which writes both in the right order",
	},
	{
		name: "a value the control file does not take", calls: []string{"write"}, errno: unix.EINVAL,
		rule: "each control file parses its own format, and this value is not in it: pids.max takes a count or max, memory.max bytes (K, M, G allowed) or max (v1 memory.limit_in_bytes: the same, or -1), cpu.max \"QUOTA PERIOD\"",
		do:   "`cgroup limit memory|pids|cpu VALUE` writes the right format for this host's cgroup version; `!cat` the file to see its current value",
	},
	{
		name: "a control file that is not there",
		when: func(f *failure) bool {
			return (f.syscall() == "openat" && f.errno == unix.ENOENT) || f.says("no such control file") || f.says("controller (") || f.says("has no ") && f.says(" controller")
		},
		rule: "a cgroup shows only the control files of its controllers: in v2, those its parent switched on in cgroup.subtree_control; in v1, each controller's files live in that controller's own hierarchy",
		do:   "Tab after `cgroup set` lists the files that exist; on v2 a controller is switched on with `echo +memory > PARENT/cgroup.subtree_control`",
	},
	{
		name: "a control file that is not writable", calls: []string{"openat", "write"},
		when: func(f *failure) bool { return f.errno == unix.EACCES || f.errno == unix.EPERM },
		rule: "cgroup control files belong to root unless the cgroup was delegated to you",
		do:   "run stepbox as root (sudo), or give it a delegated cgroup with --cgroup-parent",
	},
	{
		name: "a busy mount point", calls: mountCalls, errno: unix.EBUSY,
		rule: "mount(2) refuses a target that is already mounted in a way the new mount conflicts with, or a source that is busy",
		do:   "pick another path, or `!umount` what is there first (`mounts` shows the box's table)",
	},
	{
		name: "overlayfs refusing its options", calls: mountCalls, errno: unix.EINVAL,
		when: func(f *failure) bool { return f.says("overlay") },
		rule: "overlayfs refused the options: every lowerdir must be a directory, upper and work on the same filesystem, no two overlapping; inside a user namespace it needs userxattr (Linux 5.11+)",
		do:   "`stepbox doctor` checks overlay support; `layers` lists the layers that exist",
	},
	{
		name: "an image archive that is not there", errno: unix.ENOENT,
		when: func(f *failure) bool { return f.cmd == "image load" && f.syscall() == "stat" },
		rule: "image load reads a `docker save` archive or an OCI layout directory from the host's files, and there is nothing at that path",
		do:   "`image demo FILE` writes a demo archive there, offline, from the base layer; `docker save IMAGE -o FILE` writes one where docker runs",
	},
	{
		name: "a missing mount point or source", errno: unix.ENOENT,
		when: func(f *failure) bool { return strings.HasPrefix(f.cmd, "mount") },
		rule: "mount(2) needs the target, and for a bind the source, to exist as the box sees its files",
		do:   "give a path that exists (stepbox creates missing mount points inside the box's root); after pivot_root the host's paths are out of reach",
	},
	{
		name: "a command not in the box",
		when: func(f *failure) bool { return f.says("command not found in the box") && (f.pivoted || f.chrooted) },
		rule: "the box looks commands up in its own root: after pivot_root or chroot, only the layers' files exist there",
		do:   "`exec ls /bin` shows what the box has; add a program with a layer (`layer put`) and a new box",
	},
	{
		name: "a file that cannot be executed", calls: []string{"execve"}, errno: unix.EACCES,
		rule: "execve(2) runs only a regular file with execute permission, on a mount without noexec",
		do:   "`!chmod +x` it in its layer, or run it through its interpreter: `exec sh FILE`",
	},
	{
		name: "a name that is taken", errno: unix.EEXIST,
		rule: "the kernel will not create a file, directory or cgroup over one that exists",
		do:   "pick another name; `layers` and `boxes` list what exists",
	},
	{
		name: "a read-only cgroup tree", errno: unix.EROFS,
		when: func(f *failure) bool { return strings.HasPrefix(f.cmd, "cgroup") || f.says("/sys/fs/cgroup") },
		rule: "the cgroup filesystem is mounted read-only here, as in a container started without --privileged: no cgroup can be made or changed",
		do:   "`stepbox doctor` says where; run stepbox on the host, or in a container with a writable cgroup tree (docker run --privileged --cgroupns=private); the other steps work as they are",
	},
	{
		name: "a read-only filesystem", errno: unix.EROFS,
		rule: "the file is on a read-only mount: a volume bound with :ro, /sys, or a layer seen through its read-only lowerdir",
		do:   "write somewhere writable: the box's own upper dir (its / after pivot_root), or a tmpfs",
	},
	{
		name: "joining a namespace the caller cannot join", calls: []string{"setns"}, errno: unix.EINVAL,
		rule: "setns(2) refuses a user namespace that is the caller's own or one of its ancestors, and a namespace file of another type than the one asked for",
		do:   "`ns` shows which namespaces the box has of its own: `enter` those",
	},
}

// mkdirLayerRule is why a box in a user namespace may not make a
// directory in one of the layers' (which: where, for the learner).
func mkdirLayerRule(which string) string {
	return which + ": the layers' files belong to the host's root, whom the box's user namespace does not map (they show as nobody), so the kernel checks them against the box's root as against any other user, who may make no entry in a directory that is not its own and not writable by others"
}

// explainFailure finds the cause of err, or nil.
func explainFailure(f *failure) *cause {
	for i := range causes {
		if causes[i].matches(f) {
			return &causes[i]
		}
	}
	return nil
}

// errnoNames are the errnos the explainer knows by their text as well,
// for errors that crossed from the box process as text only.
var errnoNames = []unix.Errno{
	unix.EPERM, unix.ENOENT, unix.ESRCH, unix.EAGAIN, unix.ENOMEM, unix.EACCES, unix.EBUSY,
	unix.EEXIST, unix.EINVAL, unix.ENOSPC, unix.EROFS, unix.ELOOP, unix.EUSERS,
}

// sizeWritten finds a well-formed size in a failed write's message: the
// value was fine, so something else refused it.
var sizeWritten = regexp.MustCompile(`write\(\d+, "(-1|\d+[KMGkmg]?)"`)

var callInText = regexp.MustCompile(`\b(unshare|setns|sethostname|mount|umount2|pivot_root|chroot|mkdirat|mkdir|rmdir|openat|write|clone|mknod|fsconfig|fsmount|move_mount)\(`)

// failureOf reads what the explainer needs out of a command's error.
func (sh *Shell) failureOf(err error) *failure {
	f := &failure{msg: err.Error(), root: os.Geteuid() == 0}
	var ce *CommandError
	if errors.As(err, &ce) {
		f.cmd = ce.Cmd
	}
	if b := sh.Current(); b != nil {
		f.user, f.pid, f.pivoted, f.net, f.mnt = b.Has("user"), b.Has("pid"), b.FS().Pivoted, b.Has("net"), b.Has("mnt")
		f.chrooted, f.cgroupNS = b.FS().Chrooted, b.Has("cgroup")
		if f.pid {
			// /proc/self resolves only for a reader in that proc's PID
			// namespace or above it: if it does for the session, the box's
			// /proc is not the box's own.
			_, err := inroot.Readlink(fmt.Sprintf("/proc/%d/root", b.CommandPID()), "/proc/self")
			f.hostProc = err == nil
		}
	}
	var se *step.SyscallError
	var pathErr *fs.PathError
	switch {
	case errors.As(err, &se):
		f.call = se.Call
	case errors.As(err, &pathErr):
		f.call = fmt.Sprintf("%s(%s)", pathErr.Op, step.Quote(pathErr.Path))
	}
	f.errno = step.Errno(err)
	var pe *rootfs.PivotRootError
	if errors.As(err, &pe) {
		f.pivot = pe.Rule
	}
	errors.As(err, &f.exit)
	f.taskCap = errors.As(err, new(*primitives.TaskCapError))
	if f.errno == 0 {
		for _, e := range errnoNames {
			if strings.Contains(f.msg, e.Error()) || strings.Contains(f.msg, unix.ErrnoName(e)+" (") {
				f.errno = e
				break
			}
		}
	}
	if f.call == "" {
		if m := callInText.FindStringSubmatch(f.msg); m != nil {
			f.call = m[1] + "(…)"
		} else if strings.Contains(f.msg, "fork/exec") {
			// os.StartProcess: the errno is the fork's or the execve's.
			f.call = "execve(…)"
			if f.errno == unix.EAGAIN || f.errno == unix.ENOMEM {
				f.call = "clone(…)"
			}
		}
	}
	return f
}

// reportError prints a failed command: the error, the kernel's own words,
// and, when the cause is known, the rule broken and what to do.
func (sh *Shell) reportError(err error) {
	if errors.As(err, new(reportedError)) {
		return
	}
	th := sh.Theme
	if se := (*ScriptError)(nil); errors.As(err, &se) && se.interrupted() {
		// The line Ctrl-C ended has said so; what is left to say is where
		// the script stopped, which is no error either.
		fmt.Fprintln(sh.Err, viz.Hang("", th.Warn.Render(printable("script stopped by Ctrl-C at "+se.Where())), sh.Width))
		return
	}
	if ee := (*ExitError)(nil); errors.As(err, &ee) && ee.Interrupted != "" {
		// The learner's own Ctrl-C, echoed as ^C: a line of its own.
		fmt.Fprintln(sh.Err)
		fmt.Fprintln(sh.Err, viz.Hang("", th.Warn.Render(printable(ee.Error())), sh.Width))
		return
	}
	// Each part folds under its own text, past its label.
	fmt.Fprintln(sh.Err, viz.Hang(th.Bad.Render("error:")+" ", printable(errorText(err)), sh.Width))
	f := sh.failureOf(err)
	if kernel := f.kernelSaid(); kernel != "" {
		fmt.Fprintln(sh.Err, viz.Hang(th.Dim.Render("  kernel: "), printable(kernel), sh.Width))
	}
	if c := explainFailure(f); c != nil {
		fmt.Fprintln(sh.Err, viz.Hang(th.Dim.Render("  why:    "), printable(c.rule), sh.Width))
		fmt.Fprintln(sh.Err, viz.Hang(th.Dim.Render("  do:     "), printable(c.do), sh.Width))
	}
}

// reportedError is an error reportError has printed already, passed up
// (from the lines of a solution to the command that ran them) so it is
// not printed twice.
type reportedError struct{ error }

func (e reportedError) Unwrap() error { return e.error }

// readsProc reports whether the command of an "exec CMD" failure is one
// that lists processes from /proc.
func readsProc(cmd string) bool {
	name, _ := strings.CutPrefix(cmd, "exec ")
	switch filepath.Base(name) {
	case "ps", "top", "pgrep", "pkill", "pidof", "pstree":
		return true
	}
	return false
}

// kernelSaid is the failure as the kernel reported it, strace-style.
func (f *failure) kernelSaid() string {
	switch {
	case f.exit != nil && f.exit.Hits.PidsRefused > 0:
		return fmt.Sprintf("clone(…) = -1 EAGAIN (Resource temporarily unavailable), counted in pids.events: max +%d", f.exit.Hits.PidsRefused)
	case f.exit != nil && f.exit.Hits.OOMKills > 0:
		return fmt.Sprintf("SIGKILL from the OOM killer, counted in the memory events: oom_kill +%d", f.exit.Hits.OOMKills)
	case f.errno == 0:
		return ""
	}
	if f.call == "" {
		return step.Result(f.errno)
	}
	return f.call + " " + viz.Glue("= "+step.Result(f.errno))
}

// limitHits are the cgroup events a command caused: how often the
// kernel refused it a fork at pids.max, and how many of its processes the
// OOM killer ended.
type limitHits struct {
	PidsRefused int64
	OOMKills    int64
}

// cgroupEvents reads the box's pids and memory event counters; zero when
// the box has no cgroup or they cannot be read.
func (sh *Shell) cgroupEvents(b *primitives.Box) limitHits {
	g := b.Cgroup()
	if g == nil {
		return limitHits{}
	}
	h, err := sh.Session.Cgroups()
	if err != nil {
		return limitHits{}
	}
	st, err := h.Stats(g)
	if err != nil {
		return limitHits{}
	}
	return eventsOf(st)
}

func eventsOf(st cgroups.Stats) limitHits {
	var l limitHits
	if st.Pids != nil {
		l.PidsRefused = st.Pids.Refused
	}
	if st.Memory != nil {
		l.OOMKills = st.Memory.OOMKill
	}
	return l
}

// since is what happened between before and l.
func (l limitHits) since(before limitHits) limitHits {
	return limitHits{PidsRefused: l.PidsRefused - before.PidsRefused, OOMKills: l.OOMKills - before.OOMKills}
}
