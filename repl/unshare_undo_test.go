package repl

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"stepbox/primitives"
)

// nsLink is where /proc/PID/ns/NAME points, or the error.
func nsLink(pid int, name string) string {
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, name))
	if err != nil {
		return err.Error()
	}
	return l
}

// nsMarked runs `ns` and says, for each of rows, whether it marks the
// box's namespace with "*" (not the host's), after checking that the
// inode it shows for the box process is the one /proc/PID/ns has.
func nsMarked(t *testing.T, sh *Shell, out *bytes.Buffer, pid int, rows ...string) map[string]bool {
	t.Helper()
	out.Reset()
	run(t, sh, out, "ns")
	got := map[string]bool{}
	for _, l := range strings.Split(out.String(), "\n") {
		f := strings.Fields(strings.ReplaceAll(l, "│", " "))
		for _, r := range rows {
			if len(f) < 3 || f[0] != r {
				continue
			}
			got[r] = strings.Contains(l, "*")
			if want := fmt.Sprintf("%s:[%s]", strings.TrimSuffix(r, "_for_children"), f[2]); nsLink(pid, r) != want {
				t.Errorf("`ns` shows the box's %s as %s, /proc/%d/ns/%s is %s", r, f[2], pid, r, nsLink(pid, r))
			}
		}
	}
	if len(got) != len(rows) {
		t.Fatalf("`ns` shows no row for some of %v:\n%s", rows, out)
	}
	return got
}

// removedCleanly runs `rm NAME` and checks that the box's executor is gone.
func removedCleanly(t *testing.T, sh *Shell, out *bytes.Buffer, name string, pid int) {
	t.Helper()
	out.Reset()
	run(t, sh, out, "rm "+name)
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/ns", pid)); err == nil {
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); !strings.Contains(string(st), ") Z ") {
			t.Errorf("`rm %s`: its box process (PID %d) still runs\n%s", name, pid, out)
		}
	}
}

// A PID 1 whose fork the box's own pids.max refuses (EAGAIN) after
// unshare(CLONE_NEWPID) (issue 14, "an op that fails halfway"): the
// error names the step, the type and the syscall; the box's executor
// setns(2)s back into the PID namespace its children had, so
// pid_for_children is the host's again, and uts, made before it in the
// same step, is kept and recorded. The prompt and `ns` say what
// /proc/PID/ns says; the box takes the step once the limit allows it,
// and `rm` tears it down. A box in a user namespace of its own may not
// go back to the host's PID namespace: it is marked broken, its state
// still saying what the kernel has (pid in the prompt; /proc shows its
// pid_for_children, which no process entered, as ENOENT), takes no more
// steps, and `rm` tears it down.
func TestAPID1ForkRefusedAfterUnshareIsUndoneOrMarked(t *testing.T) {
	sh, out := liveShell(t)
	self := os.Getpid()
	run(t, sh, out, "new a", "cgroup new", "cgroup limit pids 1", "cgroup attach")
	a := sh.Current()
	pid := a.PID()
	err := sh.Execute(context.Background(), "unshare uts pid")
	for _, want := range []string{"unshare uts pid: pid: clone(flags=SIGCHLD): EAGAIN", "box a is back in the pid namespace it had", "the type before it was made and kept: box a has its new uts"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("unshare uts pid under pids.max 1: %v, want an error saying %q", err, want)
		}
	}
	if got, host := nsLink(pid, "pid_for_children"), nsLink(self, "pid"); got != host {
		t.Errorf("after the failed unshare, box a's pid_for_children is %s, the host's pid is %s", got, host)
	}
	if got, host := nsLink(pid, "uts"), nsLink(self, "uts"); got == host {
		t.Errorf("after unshare uts pid, box a's uts is the host's %s", host)
	}
	if got := sh.Prompt(); got != "a[uts|cg] ▸ " || a.InitPID() != 0 {
		t.Errorf("after the failed unshare the prompt is %q, the box's PID 1 %d", got, a.InitPID())
	}
	if m := nsMarked(t, sh, out, pid, "uts", "pid_for_children"); !m["uts"] || m["pid_for_children"] {
		t.Errorf("`ns` marks as the box's own: %v, want uts only\n%s", m, out)
	}
	run(t, sh, out, "cgroup limit pids 8", "unshare pid", "exec true")
	if a.InitPID() == 0 || sh.Prompt() != "a[uts,pid|cg] ▸ " {
		t.Errorf("unshare pid under pids.max 8: PID 1 %d, prompt %q", a.InitPID(), sh.Prompt())
	}
	removedCleanly(t, sh, out, "a", pid)

	run(t, sh, out, "new b --user", "cgroup new", "cgroup limit pids 1", "cgroup attach")
	b := sh.Current()
	pid = b.PID()
	err = sh.Execute(context.Background(), "unshare pid")
	for _, want := range []string{"unshare pid: clone(flags=SIGCHLD): EAGAIN", "the kernel refused the way back (setns(2) into the pid namespace it had: EPERM", "box b is broken", "a PID namespace with no PID 1", "`rm b` tears it down"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("unshare pid in a --user box under pids.max 1: %v, want an error saying %q", err, want)
		}
	}
	// /proc shows a PID namespace no process has entered yet as ENOENT.
	if got := nsLink(pid, "pid_for_children"); !strings.Contains(got, "no such file or directory") {
		t.Errorf("box b's pid_for_children is %s, want a new PID namespace with no PID 1 (ENOENT)", got)
	}
	if got := sh.Prompt(); got != "b[user,pid|cg] ▸ " || !b.Has("pid") {
		t.Errorf("after the failed unshare the prompt is %q, the box's namespaces %v", got, b.Unshared())
	}
	if err := sh.Execute(context.Background(), "exec true"); err == nil || !strings.Contains(err.Error(), "box b is broken") {
		t.Errorf("exec true in the broken box: %v", err)
	}
	removedCleanly(t, sh, out, "b", pid)
}

// A user namespace cannot be left, so `unshare user` claims the box's
// block of host IDs before unshare(2): with none free, the box is left
// as it was (its user namespace the host's, no other type listed made),
// and the error says why. It made an unmapped user namespace that its
// state did not know. The default area is one block of the test's own,
// which another box holds.
func TestUnshareUserWithNoIDsLeftLeavesTheBoxAsItWas(t *testing.T) {
	saved := primitives.DefaultSubordinate
	// Above the default area, below 2^31, one of 500 areas (as the
	// primitives' ID block tests choose theirs), restored after the
	// session's teardown, which checks the box's block against it.
	primitives.DefaultSubordinate = primitives.IDRange{Inside: 0, Outside: saved.Outside + saved.Count + (os.Getpid()+250)%500*2*65536, Count: 65536}
	t.Cleanup(func() { primitives.DefaultSubordinate = saved })
	sh, out := liveShell(t)
	run(t, sh, out, "new holder --user")
	holder := sh.Current().PID()
	if m, _ := os.ReadFile(fmt.Sprintf("/proc/%d/uid_map", holder)); !strings.Contains(string(m), fmt.Sprint(primitives.DefaultSubordinate.Outside)) {
		t.Skipf("root's IDs come from /etc/subuid here, not from stepbox's default area: uid_map %q", m)
	}
	self := os.Getpid()
	run(t, sh, out, "new a")
	a := sh.Current()
	pid := a.PID()
	err := sh.Execute(context.Background(), "unshare uts user")
	for _, want := range []string{"unshare user uts: user: ", "no free block of 65536 IDs", "not unshared: uts"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("unshare uts user with no block free: %v, want an error saying %q", err, want)
		}
	}
	for _, ns := range []string{"user", "uts"} {
		if got, host := nsLink(pid, ns), nsLink(self, ns); got != host {
			t.Errorf("after the failed unshare, box a's %s namespace is %s, the host's %s", ns, got, host)
		}
	}
	if got := sh.Prompt(); got != "a[] ▸ " || len(a.Unshared()) > 0 {
		t.Errorf("after the failed unshare the prompt is %q, the box's namespaces %v", got, a.Unshared())
	}
	if m := nsMarked(t, sh, out, pid, "user", "uts"); m["user"] || m["uts"] {
		t.Errorf("`ns` marks as the box's own: %v, want none\n%s", m, out)
	}
	removedCleanly(t, sh, out, "holder", holder)
	run(t, sh, out, "use a", "unshare user uts", "hostname x")
	removedCleanly(t, sh, out, "a", pid)
}
