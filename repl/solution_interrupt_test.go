package repl

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/lessons"
	"stepbox/primitives"
)

// The learner's Ctrl-C during a solution's `enter` line stops the
// solution, '-' or not, as it stops a sourced script: the terminal's
// SIGINT reaches the enter process, which passes it on to its command,
// and stepbox, which forwards its copy meanwhile rather than cancelling
// the line. The solution went on after a '-' line.
func TestCtrlCPassedOnByEnterStopsASolutionWhateverItsPrefix(t *testing.T) {
	sh, out := lessonShell(t)
	execute(t, sh, out, "new web", "unshare uts")
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); tty.Close() })
	if sh.Terminal, err = primitives.OpenTerminal(tty); err != nil {
		t.Fatal(err)
	}
	sh.signals = make(chan os.Signal, 4)
	st := &lessons.Step{Solution: []string{"-enter -- sleep 617", "hostname never-after"}}
	done := make(chan error, 1)
	go func() {
		done <- runSolution(context.Background(), sh, st, lessons.Names{}, nil, func(bool) error { return nil })
	}()
	// The terminal's Ctrl-C, as a learner's reaches stepbox's process
	// group: the enter process, the sleep's parent, and stepbox.
	enter := 0
	for deadline := time.Now().Add(20 * time.Second); enter == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("enter -- sleep 617 did not start:\n%s", out)
		}
		for _, pid := range sleepingFor("617") {
			n, _ := strconv.Atoi(pid)
			if pr, err := procfs.NewProc(n); err == nil {
				if st, err := pr.Stat(); err == nil {
					enter = st.PPID
				}
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // the enter process waits for its command
	if err := unix.Kill(enter, unix.SIGINT); err != nil {
		t.Fatal(err)
	}
	sh.signals <- syscall.SIGINT
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the solution did not end after Ctrl-C:\n%s", out)
	}
	if !interruptedBy(err) {
		t.Errorf("the solution ended with %v, want the Ctrl-C that stopped it:\n%s", err, out)
	}
	if strings.Contains(out.String(), "never-after") {
		t.Errorf("the solution went on after the Ctrl-C:\n%s", out)
	}
}
