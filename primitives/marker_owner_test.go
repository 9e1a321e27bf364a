package primitives

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// markedSleeper starts sleep with session's and box's markers, as uid
// 65534 through setpriv when forged, else as the test's own user.
func markedSleeper(t *testing.T, session, box string, forged bool) *exec.Cmd {
	t.Helper()
	args := []string{"sleep", "60"}
	if forged {
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("no setpriv to start a process as another user")
		}
		args = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{envSession + "=" + session, envBox + "=" + box, envPIDNS + "=" + ownPIDNS}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The markers show, and setpriv has dropped to 65534, once sleep runs.
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cmdline")
		if bytes.HasPrefix(b, []byte("sleep\x00")) {
			break
		}
	}
	return cmd
}

// ended says whether cmd's process exits within 5 s.
func ended(cmd *exec.Cmd) bool {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// running says why cmd's process no longer runs (a zombie, the test's
// child, keeps its PID until waited for), or nil.
func running(cmd *exec.Cmd) error {
	st, err := procState(cmd.Process.Pid)
	if err != nil {
		return err
	}
	if st == "Z" {
		return errors.New("it was killed (a zombie now)")
	}
	return nil
}

// refusals captures what MarkerRefused is told while a test runs.
func refusals(t *testing.T) func() string {
	var mu sync.Mutex
	var b strings.Builder
	old := MarkerRefused
	MarkerRefused = func(line string) { mu.Lock(); b.WriteString(line + "\n"); mu.Unlock() }
	t.Cleanup(func() { MarkerRefused = old })
	return func() string { mu.Lock(); defer mu.Unlock(); return b.String() }
}

// L4 (ut22): markers in an environment are any user's to write. `rm` and
// `exit` end the session's own marked process but leave another user's
// process that forged the marker alone, and name it.
func TestTeardownLeavesAnotherUsersForgedMarkerAlone(t *testing.T) {
	needRoot(t)
	said := refusals(t)
	// Started before the session, so that it stays in the test's own
	// cgroup: on systemd the session moves this process into a scope of
	// its own, and stopping the scope at exit ends all that is in it,
	// markers or not.
	start, err := startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	forged := markedSleeper(t, fmt.Sprintf("%d-%d", os.Getpid(), start), "web", true)
	s := newTestSession(t)
	b, _, err := s.NewBox("web", false)
	if err != nil {
		t.Fatal(err)
	}
	// A command in the host's PID namespace, which the sleeper below
	// stands for once it has left the box's cgroup: only such a process
	// outlives the box's PID 1, so only then does `rm` look for markers
	// (box_pidns.go).
	run(t, b, "true")
	ours := markedSleeper(t, s.ID, "web", false)
	if err := s.Remove("web"); err != nil {
		t.Fatalf("rm: %v", err)
	}
	if !ended(ours) {
		t.Errorf("rm left the session's own marked process %d", ours.Process.Pid)
	}
	if err := running(forged); err != nil {
		t.Fatalf("rm ended uid 65534's process %d that forged the box's marker: %v", forged.Process.Pid, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if err := running(forged); err != nil {
		t.Fatalf("exit ended uid 65534's process %d that forged the session's marker: %v", forged.Process.Pid, err)
	}
	want := "left PID " + strconv.Itoa(forged.Process.Pid) + " (sleep 60) alone"
	if got := said(); !strings.Contains(got, want) || !strings.Contains(got, "uid 65534") {
		t.Errorf("teardown did not name the forged process (%q); said:\n%s", want, got)
	}
}

// L4 (ut22): `stepbox cleanup` ends a gone session's marked process, but
// not another user's process that forged that session's marker.
func TestCleanupLeavesAnotherUsersForgedMarkerAlone(t *testing.T) {
	needRoot(t)
	said := refusals(t)
	// PIDs stay below PID_MAX_LIMIT (4194304), so this session is gone.
	forged := markedSleeper(t, "4194304-1", "web", true)
	ours := markedSleeper(t, "4194304-1", "web", false)
	if _, err := Sweep(Dirs{Run: t.TempDir(), Lib: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if !ended(ours) {
		t.Errorf("cleanup left the gone session's marked process %d", ours.Process.Pid)
	}
	if err := running(forged); err != nil {
		t.Fatalf("cleanup ended uid 65534's process %d that forged a marker: %v", forged.Process.Pid, err)
	}
	if want := "left PID " + strconv.Itoa(forged.Process.Pid); !strings.Contains(said(), want) {
		t.Errorf("cleanup did not name the forged process; said:\n%s", said())
	}
}

// A root session's teardown and a sweep leave alone, without a word, the
// processes of another user's live session (a rootless learner beside a
// lecturer's root session): their markers are not this session's, and
// that session is alive. Each of a class's root sessions named every
// rootless box process on the machine before.
func TestAnotherLiveSessionsMarkedProcessesAreNeitherJudgedNorNamed(t *testing.T) {
	needRoot(t)
	said := refusals(t)
	ppid := os.Getppid()
	start, err := startTime(ppid)
	if err != nil {
		t.Fatal(err)
	}
	theirs := markedSleeper(t, fmt.Sprintf("%d-%d", ppid, start), "web", true)
	s := newTestSession(t)
	b, _, err := s.NewBox("web", false)
	if err != nil {
		t.Fatal(err)
	}
	run(t, b, "true") // a host-PID command: rm and exit search /proc
	if err := s.Remove("web"); err != nil {
		t.Fatalf("rm: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if _, err := Sweep(Dirs{Run: t.TempDir(), Lib: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := running(theirs); err != nil {
		t.Fatalf("another live session's process %d was ended: %v", theirs.Process.Pid, err)
	}
	if got := said(); strings.Contains(got, strconv.Itoa(theirs.Process.Pid)) {
		t.Errorf("another live session's process was named:\n%s", got)
	}
}
