package repl

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"stepbox/primitives/hoststate"
)

// escapeScript is issue 15's escape from a box without a PID namespace:
// a daemon with an empty environment (no stepbox marker), re-parented to
// init, holding the box's mount namespace and its overlay. arg makes the
// sleeper this test's own.
func escapeScript(arg string) string {
	return "new db\nunshare uts mnt\nmount overlay base\nexec sh -c 'env -i /bin/sleep " + arg + " >/dev/null 2>&1 </dev/null &'\n"
}

// sleepers finds the processes running /bin/sleep arg.
func sleepers(t *testing.T, arg string) []int {
	t.Helper()
	procs, err := procfs.AllProcs()
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, p := range procs {
		if cmd, _ := p.CmdLine(); len(cmd) == 2 && cmd[0] == "/bin/sleep" && cmd[1] == arg {
			if st, err := p.Stat(); err == nil && st.State != "Z" {
				out = append(out, p.PID)
			}
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
		script := escapeScript(arg) + "!test -n \"$(pgrep -fx '/bin/sleep " + arg + "')\"\nexit\n"
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
		if len(sleepers(t, arg)) == 0 {
			t.Fatal("the sleeper died with the session: the test proves nothing")
		}
		out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
		if err != nil {
			t.Fatalf("cleanup: %v\n%s", err, out)
		}
		if left := sleepers(t, arg); len(left) > 0 {
			t.Fatalf("the unmarked sleeper %v outlived cleanup:\n%s", left, out)
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
