package primitives

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stoppedInitBox starts a box with a PID namespace, and replyTimeout long
// enough that only the learner's Ctrl-C ends a wait on its PID 1 within
// the test.
func stoppedInitBox(t *testing.T, name string) (*Session, *Box, pidStart) {
	t.Helper()
	s, b, _ := stoppedBox(t, name)
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	start, err := startTime(b.InitPID())
	if err != nil {
		t.Fatal(err)
	}
	return s, b, pidStart{b.InitPID(), start}
}

// stop sends SIGSTOP to p and waits until the kernel shows it stopped.
func stop(p pidStart) error {
	if err := unix.Kill(p.pid, unix.SIGSTOP); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if st, _ := procState(p.pid); st == "T" {
			return nil
		}
	}
	return fmt.Errorf("PID %d is not stopped 5 s after SIGSTOP", p.pid)
}

// runsChild says whether a child of pid runs `sleep arg`.
func runsChild(pid int, arg string) bool {
	raw, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(raw)) {
		cmd, _ := os.ReadFile("/proc/" + f + "/cmdline")
		if strings.HasSuffix(string(cmd), "sleep\x00"+arg+"\x00") {
			return true
		}
	}
	return false
}

// gaveUpOnCtrlC checks that err is the box given up because Ctrl-C cut
// the wait on its PID 1, that the box takes no more steps, and that `rm`
// ends it, PID 1 included, leaving the host as it was (newTestSession).
func gaveUpOnCtrlC(t *testing.T, s *Session, b *Box, init pidStart, err error) {
	t.Helper()
	var silent *BoxSilentError
	if !errors.As(err, &silent) || !silent.Interrupted || !strings.Contains(err.Error(), "of Ctrl-C") {
		t.Fatalf("exec: %v, want the box given up on Ctrl-C", err)
	}
	givenUpThenRemoved(t, s, b, init, "PID 1")
}

// ut22 L2: a box's PID 1 that is stopped (SIGSTOP here; a privileged box
// can ptrace-stop its own) never answers `exec`. Ctrl-C during that wait
// gives the box up within interruptGrace, as replyTimeout would have
// much later, and `rm` ends it.
func TestCtrlCGivesUpOnAStoppedPID1ThatDoesNotAnswerASpawn(t *testing.T) {
	needRoot(t)
	s, b, init := stoppedInitBox(t, "stopped")
	if err := stop(init); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err := b.Exec(ctx, []string{"true"}, nil, Stdio{Out: discard{}, Err: discard{}})
	gaveUpOnCtrlC(t, s, b, init, err)
}

// ut22 L2, the second wait: PID 1 stops while its command runs. Ctrl-C
// ends the command; once it has ended, its exit is PID 1's to report,
// and a PID 1 that does not is given up within interruptGrace.
func TestCtrlCGivesUpOnAStoppedPID1ThatDoesNotReportTheExit(t *testing.T) {
	needRoot(t)
	s, b, init := stoppedInitBox(t, "stopped2")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stopped := make(chan error, 1)
	go func() {
		defer cancel()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if runsChild(init.pid, "783") {
				stopped <- stop(init)
				return
			}
		}
		stopped <- errors.New("PID 1 never ran `sleep 783`")
	}()
	_, err := b.Exec(ctx, []string{"sleep", "783"}, nil, Stdio{Out: discard{}, Err: discard{}})
	if serr := <-stopped; serr != nil {
		t.Fatal(serr)
	}
	gaveUpOnCtrlC(t, s, b, init, err)
}
