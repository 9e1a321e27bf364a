package primitives

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// execGuarded runs b.Exec and gives up on it after a minute, so that a
// wait without end fails the test rather than hanging the suite.
func execGuarded(t *testing.T, b *Box, argv ...string) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		_, err := b.Exec(context.Background(), argv, nil, Stdio{Out: discard{}, Err: discard{}})
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("exec %v in box %s has not returned after a minute", argv, b.Name)
		return nil
	}
}

// stoppedBox is a box with replyTimeout long enough that only the stop
// watch can end a wait on it within the test.
func stoppedBox(t *testing.T, name string) (*Session, *Box, pidStart) {
	t.Helper()
	old := replyTimeout
	replyTimeout = 2 * time.Minute
	t.Cleanup(func() { replyTimeout = old })
	s := newTestSession(t)
	b, _, err := s.NewBox(name, false)
	if err != nil {
		t.Fatal(err)
	}
	start, err := startTime(b.PID())
	if err != nil {
		t.Fatal(err)
	}
	return s, b, pidStart{b.PID(), start}
}

// givenUpAsStopped checks that err says the box process was stopped, that
// the box takes no more steps, and that rm ends the stopped process.
func givenUpAsStopped(t *testing.T, s *Session, b *Box, box pidStart, err error, want string) {
	t.Helper()
	var silent *BoxSilentError
	if !errors.As(err, &silent) || silent.Stopped == "" {
		t.Fatalf("exec: %v, want the box given up as stopped", err)
	}
	for _, w := range []string{"box process", "stopped by a signal", want, "rm " + b.Name} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error %q does not say %q", err, w)
		}
	}
	givenUpThenRemoved(t, s, b, box, "box process")
}

// givenUpThenRemoved: a box given up takes no other step, and rm ends
// the process that stopped answering (what names it in a failure).
func givenUpThenRemoved(t *testing.T, s *Session, b *Box, p pidStart, what string) {
	t.Helper()
	var silent *BoxSilentError
	if err := execGuarded(t, b, "true"); !errors.As(err, &silent) {
		t.Errorf("the box took another step after it was given up: %v", err)
	}
	if err := s.Remove(b.Name); err != nil {
		t.Fatalf("rm: %v", err)
	}
	if !gone(p) {
		t.Fatalf("the stopped %s %d outlived rm", what, p.pid)
	}
}

// ut25 F5: a box without a PID namespace of its own sees its box process
// as its commands' parent, and stops it. The exit of the command is then
// never reported: the wait ends once the box process has stayed stopped,
// saying so and how a box can do it, and rm ends it.
func TestExecInABoxThatStopsItsOwnBoxProcessFailsSayingSo(t *testing.T) {
	needRoot(t)
	s, b, box := stoppedBox(t, "selfstop")
	err := execGuarded(t, b, "sh", "-c", "kill -STOP $PPID; echo sent")
	givenUpAsStopped(t, s, b, box, err, "kill -STOP $PPID")
}

// A box process stopped between steps answers no op: the next step fails
// saying so, well before replyTimeout.
func TestAStepOnAStoppedBoxProcessFailsSayingSo(t *testing.T) {
	needRoot(t)
	s, b, box := stoppedBox(t, "hoststop")
	if err := stop(box); err != nil {
		t.Fatal(err)
	}
	err := execGuarded(t, b, "true")
	givenUpAsStopped(t, s, b, box, err, "spawn")
}
