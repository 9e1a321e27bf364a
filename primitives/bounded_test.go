package primitives

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shortReplyTimeout makes the wait for an executor's answer short for
// one test, so that a silent executor is found out quickly.
func shortReplyTimeout(t *testing.T) {
	old := replyTimeout
	replyTimeout = time.Second
	t.Cleanup(func() { replyTimeout = old })
}

// wantSilent checks that err says which box, which process and which op
// went unanswered.
func wantSilent(t *testing.T, err error, box, op string) {
	t.Helper()
	var silent *BoxSilentError
	if !errors.As(err, &silent) {
		t.Fatalf("%s with the executor stopped: %v, want the box reported silent", op, err)
	}
	for _, want := range []string{"box " + box, op, "did not answer", "`rm " + box + "`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// A box whose executor is stopped (SIGSTOP) fails its next step with an
// error naming the box and the op, instead of waiting for ever; so does
// every later step, and `rm` still tears it down.
func TestAStoppedExecutorFailsTheStepAndTheBoxStillGoes(t *testing.T) {
	needRoot(t)
	shortReplyTimeout(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("stopped", false)
	if err != nil {
		t.Fatal(err)
	}
	pid := b.PID()
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	_, err = b.Unshare([]NamespaceType{mustType(t, "uts")}, UnshareOptions{})
	wantSilent(t, err, "stopped", "unshare")
	if _, err := b.Unshare([]NamespaceType{mustType(t, "ipc")}, UnshareOptions{}); err == nil {
		t.Fatalf("a later step on the silent box: %v, want an error", err)
	}
	if st, _ := procState(pid); st != "T" {
		t.Fatalf("the box process is in state %q, want T (stopped)", st)
	}
	// Left stopped: teardown's SIGKILL ends it all the same.
	if err := s.Remove("stopped"); err != nil {
		t.Fatalf("rm of a box whose executor is stopped: %v", err)
	}
	if _, err := procState(pid); err == nil {
		t.Errorf("PID %d is still there after rm", pid)
	}
}

// A command cancelled (Ctrl-C) while the box's PID 1 is stopped cannot
// report its exit: the wait ends with an error naming the box instead of
// lasting for ever. PID 1 continued, the box is torn down.
func TestACancelledCommandOfAStoppedInitDoesNotHang(t *testing.T) {
	needRoot(t)
	shortReplyTimeout(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("frozen", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Unshare([]NamespaceType{mustType(t, "pid")}, UnshareOptions{}); err != nil {
		t.Fatal(err)
	}
	init := b.InitPID()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := b.Exec(ctx, []string{"sleep", "1000"}, nil, Stdio{})
		done <- err
	}()
	for len(children(t, init)) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if err := unix.Kill(init, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	cancel()
	wantSilent(t, <-done, "frozen", "sleep")
	if err := unix.Kill(init, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove("frozen"); err != nil {
		t.Fatalf("rm: %v", err)
	}
}

// `mount proc` at a 2,000-level path answers (it mounts), the box's
// mount table, read through the executor, shows it, and the box takes
// the next step.
func TestMountProcAtADeepPathAnswers(t *testing.T) {
	needRoot(t)
	_, b := overlayBox(t, "deep")
	// After pivot_root the path is the box's own, under PATH_MAX.
	if _, err := b.PivotRoot(); err != nil {
		t.Fatal(err)
	}
	target := "/" + strings.Repeat("a/", 2000)
	if _, err := b.Mount("proc", "", target, false); err != nil {
		t.Fatalf("mount proc at a 2,000-level path: %v", err)
	}
	box, _, err := b.Mounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range box.Mounts {
		found = found || m.FSType == "proc" && strings.HasSuffix(strings.TrimSuffix(m.Point, "/"), strings.TrimSuffix(target, "/"))
	}
	if !found {
		t.Errorf("no proc mount at the 2,000-level path in the box's mount table")
	}
	if out := run(t, b, "echo", "next"); out != "next\n" {
		t.Errorf("the next command: %q", out)
	}
}

// A request larger than the socket carries in one message is refused
// with an error that says so, and the box is as it was: not reported gone.
func TestARequestTooBigForTheSocketLeavesTheBoxUsable(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("big", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Exec(context.Background(), []string{"echo", strings.Repeat("x", 600<<10)}, nil, Stdio{})
	if err == nil || !strings.Contains(err.Error(), "more than the socket") {
		t.Fatalf("exec with a 600 KiB argument: %v, want the request refused as too big", err)
	}
	if out := run(t, b, "echo", "still here"); out != "still here\n" {
		t.Fatalf("after the refused request: %q", out)
	}
}

// Once the filesystem of a box's upper dir, shared with the host, has
// less free than stepbox keeps back, exec refuses to start a command
// there, saying how much is free; with room again, it runs. (The
// reserve is raised above this host's free space instead of filling
// the host's disk.) As root, stepbox's own tmpfs takes the upper dir off
// the host's filesystems: STEPBOX_UPPER_MB=0 puts it back, as rootless.
func TestExecRefusesWhenTheUpperDirsFilesystemRunsShort(t *testing.T) {
	needRoot(t)
	t.Setenv(UpperSizeEnv, "0")
	_, b := overlayBox(t, "full")
	var st unix.Statfs_t
	if err := unix.Statfs(b.FS().Upper, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	old := upperReserve
	upperReserve = free + 1<<30
	_, err := b.Exec(context.Background(), []string{"true"}, nil, Stdio{})
	upperReserve = old
	if err == nil || !strings.Contains(err.Error(), "exec true: box full writes to its upper dir") || !strings.Contains(err.Error(), "MB free") {
		t.Fatalf("exec with less free than the reserve: %v, want a refusal naming the free space", err)
	}
	if out := run(t, b, "echo", "room"); out != "room\n" {
		t.Errorf("exec with room again: %q", out)
	}
}
