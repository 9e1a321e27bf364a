package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// syscallErr is a failed call as the primitives report it.
func syscallErr(cmd, call string, errno unix.Errno) error {
	return &CommandError{Cmd: cmd, Err: fmt.Errorf("%s: %w", cmd, &step.SyscallError{Call: call, Err: errno})}
}

func pivotErr(rule rootfs.PivotRule, errno unix.Errno) error {
	return &CommandError{Cmd: "pivot_root", Err: &rootfs.PivotRootError{Rule: rule, NewRoot: "/run/stepbox/web/merged",
		Err: &step.SyscallError{Call: `pivot_root(".", ".")`, Err: errno}}}
}

// knownFailures are the table's causes, each as a command meets it. The
// kernel's answers are the ones it gives (see the live tests below for
// those it lets a test provoke).
var knownFailures = []struct {
	cause string
	err   error
	user  bool // in a box with a user namespace of its own
	pid   bool // … and a PID namespace, and pivot_root done
	proc  bool // in a box with a PID namespace whose /proc is the host's
	// cgroupNS: in a box with a cgroup namespace of its own
	cgroupNS bool
}{
	{cause: "pivot_root on a shared mount", err: pivotErr(rootfs.PivotSharedMount, unix.EINVAL)},
	{cause: "pivot_root into a directory that is not a mount point", err: pivotErr(rootfs.PivotNotMountPoint, unix.EBUSY)},
	{cause: "pivot_root after chroot", err: pivotErr(rootfs.PivotRootNotMountPoint, unix.EINVAL)},
	{cause: "pivot_root in the host's mount namespace", err: &CommandError{Cmd: "pivot_root", Err: &rootfs.PivotRootError{Rule: rootfs.PivotNoMountNamespace, Err: errors.New("no mount namespace")}}},
	{cause: "unshare user in a chroot", err: syscallErr("unshare", "unshare(CLONE_NEWUSER)", unix.EPERM)},
	{cause: "mount sysfs in a user namespace without a network namespace", user: true,
		err: syscallErr("mount sys", `mount("sysfs", "/m/sys", "sysfs", MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)`, unix.EPERM)},
	{cause: "mount proc in a user namespace without a PID namespace", user: true,
		err: syscallErr("mount proc", `mount("proc", "/m/proc", "proc", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)`, unix.EPERM)},
	{cause: "mount proc in a user namespace after pivot_root", user: true, pid: true,
		err: syscallErr("mount proc", `mount("proc", "/proc2", "proc", MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)`, unix.EPERM)},
	{cause: "cgroup's mount point under the layers' /sys, with a cgroup namespace", user: true, pid: true, cgroupNS: true,
		err: syscallErr("mount cgroup", `mkdir("/sys/fs", 0755)`, unix.EACCES)},
	{cause: "cgroup's mount point under the layers' /sys", user: true, pid: true,
		err: syscallErr("mount cgroup", `mkdir("/sys/fs", 0755)`, unix.EACCES)},
	{cause: "a mount point under the layers' directories", user: true, pid: true,
		err: syscallErr("mount tmpfs", `mkdir("/usr/share/x", 0755)`, unix.EACCES)},
	{cause: "an overlay out of a remapped root's reach", user: true,
		err: syscallErr("mount overlay", `mount("overlay", "/m/merged", "overlay", 0, "lowerdir=/l,upperdir=/u,workdir=/w,userxattr")`, unix.EACCES)},
	{cause: "a namespace owned by another user namespace", user: true, err: syscallErr("hostname", `sethostname("web", 3)`, unix.EPERM)},
	{cause: "a missing capability", err: syscallErr("unshare", "unshare(CLONE_NEWUTS)", unix.EPERM)},
	{cause: "fork refused at stepbox's cap for all boxes", err: &CommandError{Cmd: "exec", Err: &primitives.TaskCapError{Err: &step.SyscallError{Call: "clone(…)", Err: unix.EAGAIN},
		Current: 4096, Max: 4096, File: "/sys/fs/cgroup/pids/stepbox-1/pids.max", Boxes: []primitives.BoxTasks{{Box: "f", Tasks: 4094}}}}},
	{cause: "fork refused at pids.max", err: &CommandError{Cmd: "exec", Err: errors.New("exec true: fork/exec /usr/bin/true: resource temporarily unavailable")}},
	{cause: "ps with the host's /proc in a PID namespace", proc: true, err: &ExitError{Cmd: "exec ps", Status: primitives.ExitStatus{Code: 1}}},
	{cause: "a v1 memory limit above its memory+swap limit",
		err: syscallErr("cgroup set", `write(3, "67108864", 8)`+" (memory.limit_in_bytes)", unix.EINVAL)},
	{cause: "a read-only cgroup tree", err: syscallErr("cgroup new", `mkdir("/sys/fs/cgroup/stepbox-42", 0755)`, unix.EROFS)},
	{cause: "a command stopped by pids.max", err: &ExitError{Cmd: "exec sh", Status: primitives.ExitStatus{Code: 2}, Hits: limitHits{PidsRefused: 3}}},
	{cause: "a command killed by the OOM killer", err: &ExitError{Cmd: "exec sh", Status: primitives.ExitStatus{Code: 137, Signal: "SIGKILL"}, Hits: limitHits{OOMKills: 1}}},
	{cause: "fork in a PID namespace whose PID 1 has exited", err: &CommandError{Cmd: "exec", Err: errors.New("exec true: fork/exec /usr/bin/true: cannot allocate memory")}},
	{cause: "rmdir of a cgroup still in use", err: syscallErr("rm", `rmdir("/sys/fs/cgroup/pids/stepbox-1/web-0123456789ab")`, unix.EBUSY)},
	{cause: "controllers switched on above processes (cgroup v2)",
		err: &CommandError{Cmd: "cgroup new", Err: fmt.Errorf(`write "+pids" to /sys/fs/cgroup/a/cgroup.subtree_control: %w`, &step.SyscallError{Call: `write(3, "+pids", 5)`, Err: unix.EBUSY})}},
	{cause: "mount sysfs in a user namespace after pivot_root", user: true, pid: true,
		err: syscallErr("mount sys", `mount("sysfs", "/sys", "sysfs", MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC, NULL)`, unix.EPERM)},
	{cause: "a full state dir", err: &CommandError{Cmd: "mount overlay", Err: fmt.Errorf("ledger: write %s: %w", "/run/stepbox/sessions/1-1/boxes/web/ledger.jsonl",
		&fs.PathError{Op: "write", Path: "/run/stepbox/sessions/1-1/boxes/web/ledger.jsonl", Err: unix.ENOSPC})}},
	{cause: "attach to a cpuset with no CPUs (cgroup v1)", err: syscallErr("cgroup attach", `write(5, "4251", 4)`, unix.ENOSPC)},
	{cause: "a process that has exited", err: syscallErr("cgroup attach", `write(5, "4251", 4)`, unix.ESRCH)},
	{cause: "a value the control file does not take", err: syscallErr("cgroup set", `write(5, "abc", 3)`, unix.EINVAL)},
	{cause: "a control file that is not there", err: &CommandError{Cmd: "cgroup set", Err: errors.New("cgroup set memory.foo: no such control file in /sys/fs/cgroup/memory/web")}},
	{cause: "a control file that is not writable", err: syscallErr("cgroup set", `openat(AT_FDCWD, "/sys/fs/cgroup/pids/web/pids.max", O_WRONLY|O_TRUNC|O_CLOEXEC)`, unix.EACCES)},
	{cause: "a busy mount point", err: syscallErr("mount tmpfs", `mount("tmpfs", "/m/tmp", "tmpfs", MS_NOSUID|MS_NODEV, "mode=1777")`, unix.EBUSY)},
	{cause: "overlayfs refusing its options", err: syscallErr("mount overlay", `mount("overlay", "/m", "overlay", 0, "lowerdir=/a,upperdir=/u,workdir=/w")`, unix.EINVAL)},
	{cause: "a missing mount point or source", err: syscallErr("mount bind", `mount("/srv/x", "/m/x", NULL, MS_BIND, NULL)`, unix.ENOENT)},
	{cause: "an image archive that is not there", err: &CommandError{Cmd: "image load", Err: fmt.Errorf("image load: %w", &fs.PathError{Op: "stat", Path: "/tmp/demo.tar", Err: unix.ENOENT})}},
	{cause: "a low port in the host's network namespace", user: true, err: deniedExec("busybox", "httpd: bind: Permission denied\n")},
	{cause: "a mount in the host's mount namespace", user: true, err: deniedExec("mount", deniedMount)},
	{cause: "a file of the host's root", user: true, err: deniedExec("touch", "touch: cannot touch '/test': Permission denied\n")},
	{cause: "a command not in the box", pid: true, err: &CommandError{Cmd: "exec", Err: errors.New(`exec: "bash": command not found in the box (PATH=/bin)`)}},
	{cause: "a file that cannot be executed", err: &CommandError{Cmd: "exec", Err: errors.New("exec /etc/hostname: fork/exec /etc/hostname: permission denied")}},
	{cause: "a name that is taken", err: syscallErr("cgroup new", `mkdirat(AT_FDCWD, "/sys/fs/cgroup/pids/web", 0755)`, unix.EEXIST)},
	{cause: "a read-only filesystem", err: syscallErr("mount tmpfs", `mkdir("/m/x", 0755)`, unix.EROFS)},
	{cause: "nsenter into a box's namespaces without its user namespace", user: true,
		err: &ExitError{Cmd: "!nsenter", Status: primitives.ExitStatus{Code: 1}, Stderr: "nsenter: reassociate to namespace 'ns/uts' failed: Operation not permitted\n"}},
	{cause: "joining a namespace the caller cannot join", err: syscallErr("enter", "setns(3</proc/1/ns/time>, CLONE_NEWTIME)", unix.EINVAL)},
}

// deniedExec is an exec whose command exited 1 after writing stderr.
func deniedExec(cmd, stderr string) error {
	return &ExitError{Cmd: "exec " + cmd, Status: primitives.ExitStatus{Code: 1}, Stderr: stderr}
}

const deniedMount = "mount: /mnt: permission denied.\n       dmesg(1) may have more information after failed mount system call.\n"

// Once the box has the namespace or the root of its own, the same words
// from a command have another cause, which stepbox does not claim to know.
func TestAFailedExecIsBlamedOnTheHostOnlyWhileTheBoxSharesIt(t *testing.T) {
	sh, _ := plainShell()
	for _, k := range []struct {
		err  error
		own  func(f *failure)
		what string
	}{
		{deniedExec("busybox", "httpd: bind: Permission denied\n"), func(f *failure) { f.net, f.pivoted = true, true }, "its own network namespace"},
		{deniedExec("mount", deniedMount), func(f *failure) { f.mnt, f.pivoted = true, true }, "its own mount namespace"},
		{deniedExec("touch", "touch: cannot touch '/test': Permission denied\n"), func(f *failure) { f.pivoted = true }, "pivot_root done"},
		{deniedExec("touch", "touch: cannot touch '/test': Permission denied\n"), func(f *failure) { f.chrooted = true }, "chroot done"},
		{deniedExec("touch", "touch: cannot touch '/test': Permission denied\n"), func(f *failure) { f.user = false }, "no user namespace"},
		{&CommandError{Cmd: "exec", Err: errors.New(`exec: "hostnmae": command not found in the box (PATH=/usr/bin:/bin)`)}, func(f *failure) {}, "the host's root"},
	} {
		f := sh.failureOf(k.err)
		f.user = true
		k.own(f)
		if c := explainFailure(f); c != nil {
			t.Errorf("%v, with %s: explained as %q", k.err, k.what, c.name)
		}
	}
}

func TestEveryKnownCauseIsExplained(t *testing.T) {
	sh, _ := plainShell()
	covered := map[string]bool{}
	for _, k := range knownFailures {
		f := sh.failureOf(k.err)
		f.user, f.root = k.user, true
		f.pid, f.pivoted = k.pid || k.proc, k.pid
		f.hostProc, f.cgroupNS = k.proc, k.cgroupNS
		if k.cause == "a missing capability" {
			f.root = false
		}
		c := explainFailure(f)
		if c == nil {
			t.Errorf("%v: no cause found, want %q", k.err, k.cause)
			continue
		}
		if c.name != k.cause {
			t.Errorf("%v: explained as %q, want %q", k.err, c.name, k.cause)
		}
		covered[c.name] = true
		if c.rule == "" || c.do == "" {
			t.Errorf("cause %q says no rule or nothing to do", c.name)
		}
	}
	for _, c := range causes {
		if !covered[c.name] {
			t.Errorf("cause %q is in the table but no test meets it", c.name)
		}
	}
}

func TestAnUnknownFailureGetsNoMadeUpExplanation(t *testing.T) {
	sh, out := plainShell()
	sh.reportError(&CommandError{Cmd: "use", Err: errors.New(`no box called "x": there are no boxes yet`)})
	if strings.Contains(out.String(), "why:") || strings.Contains(out.String(), "kernel:") {
		t.Errorf("a failure the kernel had no part in is explained:\n%s", out)
	}
}

// explained runs line in sh, which must fail, and returns what stepbox
// printed about the failure.
func explained(t *testing.T, sh *Shell, line string) string {
	t.Helper()
	var buf bytes.Buffer
	errw := sh.Err
	sh.Err = &buf
	defer func() { sh.Err = errw }()
	err := sh.Execute(context.Background(), line)
	if err == nil {
		t.Fatalf("%s did not fail", line)
	}
	sh.reportError(err)
	return buf.String()
}

// unfolded is s with every run of spaces and newlines made one space.
func unfolded(s string) string { return strings.Join(strings.Fields(s), " ") }

func wantExplanation(t *testing.T, got, line, name string, kernel ...string) {
	t.Helper()
	var c *cause
	for i := range causes {
		if causes[i].name == name {
			c = &causes[i]
		}
	}
	if c == nil {
		t.Fatalf("no cause %q in the table", name)
	}
	// Lines fold at the terminal's width: compare the words.
	flat := unfolded(got)
	if !strings.Contains(flat, unfolded("why: "+c.rule)) || !strings.Contains(flat, unfolded("do: "+c.do)) {
		t.Errorf("%s: not explained as %q:\n%s", line, name, got)
	}
	for _, k := range kernel {
		if !strings.Contains(got, "kernel: ") || !strings.Contains(flat, unfolded(k)) {
			t.Errorf("%s: the kernel's words %q are missing:\n%s", line, k, got)
		}
	}
}

// The causes the kernel lets a test provoke, each provoked for real.
func TestFailuresAreExplainedInTheKernelsWords(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new jail", "unshare mnt", "mount overlay base", "chroot")
	got := explained(t, sh, "unshare user")
	wantExplanation(t, got, "unshare user", "unshare user in a chroot", "unshare(CLONE_NEWUSER) = -1 EPERM")
	run(t, sh, out, "new web")

	run(t, sh, out, "unshare uts mnt pid", "mount overlay base", "cgroup new")
	got = explained(t, sh, "cgroup set pids.max abc")
	wantExplanation(t, got, "cgroup set pids.max abc", "a value the control file does not take", `write(`, `"abc"`, "= -1 EINVAL (Invalid argument)")
	got = explained(t, sh, "cgroup set memory.nosuchfile 1")
	wantExplanation(t, got, "cgroup set memory.nosuchfile 1", "a control file that is not there")

	// EEXIST: the box's cgroup made a second time, by the same code.
	h, err := sh.Session.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	g := sh.Current().Cgroup()
	parent := &cgroups.Group{}
	for _, d := range g.Dirs {
		d.Path, d.Cgroup = filepath.Dir(d.Path), path.Dir(d.Cgroup)
		parent.Dirs = append(parent.Dirs, d)
	}
	_, _, err = h.Create(parent, "web", sh.Current().ID)
	if err == nil {
		t.Fatal("making the box's cgroup twice worked")
	}
	var buf bytes.Buffer
	sh.Err = &buf
	sh.reportError(&CommandError{Cmd: "cgroup new", Err: err})
	wantExplanation(t, buf.String(), "cgroup new twice", "a name that is taken", "mkdirat(", "= -1 EEXIST (File exists)")

	// EAGAIN: the box's own fork, with pids.max at what it already holds.
	run(t, sh, out, "cgroup attach")
	pidsDir := g.Dirs[0].Path
	for _, d := range g.Dirs {
		if strings.Contains(d.Hierarchy, "pids") || d.Hierarchy == "" {
			pidsDir = d.Path
		}
	}
	cur, err := os.ReadFile(filepath.Join(pidsDir, "pids.current"))
	if err != nil {
		t.Fatal(err)
	}
	run(t, sh, out, "cgroup set pids.max "+strings.TrimSpace(string(cur)))
	got = explained(t, sh, "exec true")
	wantExplanation(t, got, "exec true at pids.max", "fork refused at pids.max", "= -1 EAGAIN (Resource temporarily unavailable)")

	// The same limit met by a command's own forks.
	n, _ := strconv.Atoi(strings.TrimSpace(string(cur)))
	run(t, sh, out, fmt.Sprintf("cgroup limit pids %d", n+4))
	got = explained(t, sh, `exec sh -c 'for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 0.3 & done; wait; exit 1'`)
	wantExplanation(t, got, "fork loop at pids.max", "a command stopped by pids.max", "EAGAIN", "pids.events")

	// The OOM killer, against a shell that grows past the memory limit.
	run(t, sh, out, "cgroup limit pids max", "cgroup limit memory 24M")
	// The hog volunteers as the OOM killer's victim (raising
	// oom_score_adj needs no privilege): where PID 1 cannot lower its own
	// (no CAP_SYS_RESOURCE), the killer could otherwise pick PID 1.
	got = explained(t, sh, `exec sh -c 'echo 1000 > /proc/self/oom_score_adj; x=$(head -c 100000000 /dev/zero | tr "\0" a); echo $x | wc -c'`)
	wantExplanation(t, got, "memory hog", "a command killed by the OOM killer", "oom_kill +")
	run(t, sh, out, "cgroup limit memory max")

	// rmdir of the box's cgroup while its PID 1 is in it, as a learner's
	// `!rmdir` does. (Teardown's removal would end PID 1 first on v2,
	// through cgroup.kill.)
	dir := g.Dirs[0].Path
	rerr := unix.Rmdir(dir)
	if rerr != unix.EBUSY {
		t.Fatalf("rmdir of a populated cgroup: %v, want EBUSY", rerr)
	}
	err = fmt.Errorf("rmdir cgroup %s: %w", dir, &step.SyscallError{Call: "rmdir(" + step.Quote(dir) + ")", Err: rerr})
	buf.Reset()
	sh.reportError(&CommandError{Cmd: "rm", Err: err})
	wantExplanation(t, buf.String(), "rmdir of a populated cgroup", "rmdir of a cgroup still in use", "rmdir(", "= -1 EBUSY (Device or resource busy)")
	sh.Err = out

	run(t, sh, out, "pivot_root")
	got = explained(t, sh, "exec nosuchcommand")
	wantExplanation(t, got, "exec nosuchcommand", "a command not in the box")
	got = explained(t, sh, "exec /etc/hostname")
	wantExplanation(t, got, "exec /etc/hostname", "a file that cannot be executed", "execve(", "EACCES (Permission denied)")

	// A user namespace owns only what it made.
	run(t, sh, out, "new u --user", "unshare mnt", "mount overlay base")
	got = explained(t, sh, "mount sys")
	wantExplanation(t, got, "mount sys", "mount sysfs in a user namespace without a network namespace", `mount("sysfs"`, "= -1 EPERM (Operation not permitted)")
	got = explained(t, sh, "mount proc")
	wantExplanation(t, got, "mount proc", "mount proc in a user namespace without a PID namespace", `mount("proc"`, "EPERM")
}

// As an ordinary user, without --user, stepbox runs rootless: the box
// gets a user namespace of its own all the same, so the namespace step
// that lacked the capability before now has it (rootless_test.go checks
// the kernel's side).
func TestUnprivilegedUnshareWorksRootless(t *testing.T) {
	needRoot(t) // to become uid 65534
	hostUnchanged(t)
	dir, err := os.MkdirTemp("", "stepbox-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		stepboxBinary(t), "--plain", "--state-dir", dir, "run", "-")
	cmd.Stdin = strings.NewReader("new web\nunshare uts\n")
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "stepbox: rootless") || !strings.Contains(string(got), "box web has new uts") {
		t.Fatalf("unshare uts as uid 65534 (%v):\n%s", err, got)
	}
}
