package repl

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"stepbox/primitives/hoststate"
	"stepbox/primitives/step"
)

// escapeScript is issue 15's escape from a box without a PID namespace:
// a daemon with an empty environment (no stepbox marker), re-parented to
// init, holding the box's mount namespace and its overlay. arg makes the
// sleeper this test's own.
func escapeScript(arg string) string {
	return "new db\nunshare uts mnt\nmount overlay base\nexec sh -c 'env -i /bin/sleep " + arg + " >/dev/null 2>&1 </dev/null &'\n"
}

// sleepers finds the live processes running /bin/sleep arg.
func sleepers(t *testing.T, arg string) []int {
	return processesWhere(t, func(p procfs.Proc) bool {
		// comm first: reading another process's cmdline waits for its
		// memory map, which a process stuck in the kernel may hold.
		if c, err := p.Comm(); err != nil || c != "sleep" {
			return false
		}
		cmd, _ := p.CmdLine()
		st, err := p.Stat()
		return len(cmd) == 2 && cmd[0] == "/bin/sleep" && cmd[1] == arg && err == nil && st.State != "Z"
	})
}

// processesWhere lists the processes for which match holds.
func processesWhere(t *testing.T, match func(procfs.Proc) bool) []int {
	t.Helper()
	procs, err := procfs.AllProcs()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range procs {
		if match(p) {
			out = append(out, p.PID)
		}
	}
	return out
}

// Teardown finds every process a box started, markers or not: on `exit`,
// and after `kill -9` of the session by `stepbox cleanup`.
func TestAProcessThatShedItsMarkersEndsWithTheSession(t *testing.T) {
	needRoot(t)
	t.Run("exit", func(t *testing.T) {
		hostUnchanged(t)
		arg := "777." + strconv.Itoa(os.Getpid()) + "1"
		dir := t.TempDir()
		// The sleeper starts in the background: wait for it (up to 5 s).
		script := escapeScript(arg) + "!timeout 5 sh -c 'until pgrep -fx \"/bin/sleep " + arg + "\" >/dev/null; do sleep 0.02; done'\nexit\n"
		out, code := runStepbox(t, dir, script)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if left := sleepers(t, arg); len(left) > 0 {
			t.Fatalf("the unmarked sleeper %v outlived exit:\n%s", left, out)
		}
		assertNoSessions(t, dir)
	})
	t.Run("kill9 then cleanup", func(t *testing.T) {
		hostUnchanged(t)
		arg := "777." + strconv.Itoa(os.Getpid()) + "2"
		dir := t.TempDir()
		cmd, w := startSession(t, dir, escapeScript(arg))
		defer w.Close()
		for deadline := time.Now().Add(10 * time.Second); len(sleepers(t, arg)) == 0; time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the sleeper never started")
			}
		}
		cmd.Process.Kill()
		cmd.Wait()
		sleeper := sleepers(t, arg)
		if len(sleeper) == 0 {
			t.Fatal("the sleeper died with the session: the test proves nothing")
		}
		// Cleanup counts what it ended: every process still in the
		// session's cgroups once its death has settled, the sleeper's
		// among them (ut32 F1: it said 0).
		parents := sessionParents(t, dir)
		var want []int
		for prev := -1; len(parents) > 0 && len(want) != prev; time.Sleep(200 * time.Millisecond) {
			prev, want = len(want), nil
			for _, p := range parents {
				want = append(want, pidsBelow(t, p, "")...)
			}
			slices.Sort(want)
			want = slices.Compact(want)
		}
		out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
		if err != nil {
			t.Fatalf("cleanup: %v\n%s", err, out)
		}
		if left := sleepers(t, arg); len(left) > 0 {
			t.Fatalf("the unmarked sleeper %v outlived cleanup:\n%s", left, out)
		}
		if len(parents) > 0 {
			want = withNamed(want, string(out))
			if !slices.Contains(want, sleeper[0]) {
				t.Errorf("the sleeper %d was in none of the session's cgroups %v: %v", sleeper[0], parents, want)
			}
			if n := step.Count(len(want), "process") + " ended"; !strings.Contains(string(out), n) {
				t.Errorf("cleanup ended the session's processes %v, the sleeper's among them, but does not say %q:\n%s", want, n, out)
			}
		}
		assertNoSessions(t, dir)
		if left := hoststate.StepboxProcesses(); len(left) > 0 {
			t.Fatalf("processes left after cleanup: %v", left)
		}
	})
}

// "everything the script made has been torn down" is said once it is so:
// when tornDown returns, the box's process has gone and the session's
// state with it.
func TestTornDownIsSaidOnlyAfterTheTeardown(t *testing.T) {
	sh, _ := liveShell(t)
	b, _, err := sh.Session.NewBox("web", false)
	if err != nil {
		t.Fatal(err)
	}
	pid := b.PID()
	msg := tornDown(sh, "the script made")
	if msg != "everything the script made has been torn down" {
		t.Fatalf("tornDown = %q", msg)
	}
	if p, err := procfs.NewProc(pid); err == nil {
		if st, err := p.Stat(); err == nil && st.State != "Z" {
			t.Errorf("the box process %d still runs after %q", pid, msg)
		}
	}
	if _, err := os.Stat(sh.Session.Dir); !os.IsNotExist(err) {
		t.Errorf("the session's state %s is still there after %q", sh.Session.Dir, msg)
	}
}

// inRootCgroups reports whether process pid is in the root cgroup of
// every hierarchy it is in (/proc/PID/cgroup).
func inRootCgroups(t *testing.T, pid int) bool {
	t.Helper()
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) != 3 || parts[2] != "/" {
			return false
		}
	}
	return true
}

// mountedBy lists the processes whose mount table names path.
func mountedBy(t *testing.T, path string) []int {
	return processesWhere(t, func(p procfs.Proc) bool {
		raw, err := os.ReadFile("/proc/" + strconv.Itoa(p.PID) + "/mountinfo")
		return err == nil && strings.Contains(string(raw), path)
	})
}

// Issue 15 item 3's last hole: in a fully privileged box without a PID
// namespace, a daemon that clears its environment, starts a session of
// its own and moves itself into the root cgroup of every hierarchy (v1 and
// v2) leaves every trace stepbox follows while the session lives. After
// `kill -9` of the session, `stepbox cleanup` still finds it in the
// namespaces the box's ledger recorded, ends it, says so, and the box's
// overlay goes with it.
func TestCleanupEndsAProcessThatMovedToTheRootCgroup(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	arg := "779." + strconv.Itoa(os.Getpid())
	dir := t.TempDir()
	script := "new db\nunshare uts mnt\nmount overlay base\n" +
		// The root of every hierarchy: on v2 /sys/fs/cgroup itself (its
		// children, init.scope on systemd, would take the sleeper out of
		// the root again); on v1 and hybrid each mount below it.
		`exec sh -c '(setsid sh -c "if [ -e /sys/fs/cgroup/cgroup.controllers ]; then set -- /sys/fs/cgroup/cgroup.procs; else set -- /sys/fs/cgroup/*/cgroup.procs; fi; for f; do echo \$\$ > \$f; done 2>/dev/null; exec env -i /bin/sleep ` + arg + `" >/dev/null 2>&1 </dev/null &)'` + "\n"
	cmd, w := startSession(t, dir, script)
	// On a failure, the session's teardown ends before the test's own
	// clean-up removes its state dir.
	defer func() { w.Close(); cmd.Wait() }()
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the sleeper never started")
		}
		if s := sleepers(t, arg); len(s) == 1 && inRootCgroups(t, s[0]) {
			pid = s[0]
		}
	}
	p, _ := procfs.NewProc(pid)
	st, _ := p.Stat()
	if st.Session != pid {
		t.Fatalf("the sleeper %d is in session %d, not one of its own", pid, st.Session)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if left := sleepers(t, arg); len(left) == 0 {
		t.Fatal("the sleeper died with the session: the test proves nothing")
	}
	if len(mountedBy(t, dir)) == 0 {
		t.Fatal("no process holds the box's overlay: the test proves nothing")
	}
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if left := sleepers(t, arg); len(left) > 0 {
		// The test's own process: end it, so a failure leaves nothing.
		syscall.Kill(left[0], syscall.SIGKILL)
		t.Fatalf("the sleeper %v, in the root cgroup, outlived cleanup:\n%s", left, out)
	}
	want := "ended PID " + strconv.Itoa(pid) + ` ("sleep", in the box's mnt, uts namespace) of box db`
	if !strings.Contains(string(out), want) {
		t.Errorf("cleanup does not say what it ended (want %q):\n%s", want, out)
	}
	if by := mountedBy(t, dir); len(by) > 0 {
		t.Errorf("the box's overlay is still mounted, in the mount namespace of %v", by)
	}
	assertNoSessions(t, dir)
	if left := hoststate.StepboxProcesses(); len(left) > 0 {
		t.Fatalf("processes left after cleanup: %v", left)
	}
}
