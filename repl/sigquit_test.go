package repl

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/hoststate"
)

// ut34 F10: SIGQUIT (Ctrl-\ at a terminal, or kill -QUIT) while `stepbox
// run` ran a line dumped Go's goroutines and exited 2, leaving the box's
// upper tmpfs mounted and the session's cgroups behind. It tears down as
// SIGTERM and SIGHUP do, exits 128+3, says so, and runs no later line;
// the box's command ignores SIGINT, SIGTERM and SIGHUP, as the finding's.
func TestSIGQUITTearsARunDownAndSaysSo(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := writeScripts(t, map[string]string{
		"q.sb": "new a\nexec sh -c 'trap \"\" INT TERM HUP; echo started-7723; sleep 60'\nhelp never\n",
	})
	state := filepath.Join(dir, "state")
	cmd := exec.Command(stepboxBinary(t), "--plain", "--state-dir", state, "run", "q.sb")
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	run := childStepbox(t, cmd, state, unix.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "started-7723\n"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the script's exec never started in 30 s:\n%s", out.String())
		}
	}
	// What the check below must find gone is there now.
	before := hoststate.SessionLeft(state, cmd.Process.Pid)
	if !strings.Contains(strings.Join(before, "\n"), "mount ") {
		t.Fatalf("while box a runs, its session should hold a mount (the upper tmpfs); it holds:\n%s", strings.Join(before, "\n"))
	}
	run.signal(unix.SIGQUIT)
	if err := waitPidfd(run.pidfd, 30*time.Second); err != nil {
		t.Fatalf("stepbox did not end 30 s after SIGQUIT: %v\n%s", err, out.String())
	}
	err := cmd.Wait()
	s := out.String()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(unix.SIGQUIT) {
		t.Errorf("stepbox run q.sb, sent SIGQUIT: %v, want exit status %d\n%s", err, 128+int(unix.SIGQUIT), s)
	}
	if !strings.Contains(s, "stepbox: quit (SIGQUIT, Ctrl-\\): everything the session made has been torn down\n") {
		t.Errorf("stepbox run does not say that SIGQUIT tore the session down:\n%s", s)
	}
	if strings.Contains(s, "goroutine ") || strings.Contains(s, "SIGQUIT: quit") || strings.Contains(s, "help never") {
		t.Errorf("stepbox run dumped its goroutines on SIGQUIT, or went on to the next line:\n%s", s)
	}
	left := hoststate.SessionLeft(state, cmd.Process.Pid)
	for deadline := time.Now().Add(2 * time.Second); len(left) > 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		left = hoststate.SessionLeft(state, cmd.Process.Pid) // a killed process not yet reaped
	}
	if len(left) > 0 {
		t.Errorf("SIGQUIT left of the session:\n%s", strings.Join(left, "\n"))
	}
}

// At the prompt, Ctrl-\ stays the prompt's (ut34 F10 left it as it was):
// it stops the command under way, as Ctrl-C does, and the session, which
// now tears down on SIGQUIT outside the prompt, goes on.
func TestCtrlBackslashAtThePromptStopsOnlyTheCommand(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	dir := t.TempDir()
	p.startBox(dir)
	p.mark()
	p.line("exec sleep 60")
	time.Sleep(300 * time.Millisecond)
	p.keys(`C-\`)
	p.waitFor("\ninterrupted: exec sleep (SIGINT)\n", "web[uts,mnt,pid] ▸")
	p.mark()
	p.line(`exec sh -c 'echo still-$((6*7))'`)
	p.waitFor("still-42\n", "web[uts,mnt,pid] ▸")
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	assertNoSessions(t, dir)
}

// `stepbox lesson check` on SIGQUIT stops as on SIGINT and SIGTERM: the
// line under way is interrupted, the lesson fails so (exit status 1), and
// its session is torn down; Go's own handler dumped the goroutines
// instead and left the session's mount and cgroups (ut34 F10). The
// lesson is the course's first with a line that sleeps in its first
// step's solution.
func TestSIGQUITTearsALessonCheckDown(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	src, err := os.ReadFile("../lessons/01-one-kernel.md")
	if err != nil {
		t.Fatal(err)
	}
	const end = "unshare uts\n!ls -l /proc/$BOX_PID/ns\n```\n\n## One kernel, a name of its own"
	if strings.Count(string(src), end) != 1 {
		t.Fatalf("lesson 1's first solution no longer ends with %q", end)
	}
	sleepy := strings.Replace(string(src), end, "unshare uts\n!ls -l /proc/$BOX_PID/ns\nexec sh -c 'echo started-7724; sleep 60'\n```\n\n## One kernel, a name of its own", 1)
	dir := writeScripts(t, map[string]string{"sleepy.md": sleepy})
	state := filepath.Join(dir, "state")
	cmd := exec.Command(stepboxBinary(t), "--state-dir", state, "lesson", "check", "-v", "sleepy.md")
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	run := childStepbox(t, cmd, state, unix.SIGTERM)
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(out.String(), "started-7724\n"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the lesson's sleep never started in 60 s:\n%s", out.String())
		}
	}
	before := hoststate.SessionLeft(state, cmd.Process.Pid)
	if !strings.Contains(strings.Join(before, "\n"), "mount ") {
		t.Fatalf("while the lesson's box runs, its session should hold a mount (the upper tmpfs); it holds:\n%s", strings.Join(before, "\n"))
	}
	run.signal(unix.SIGQUIT)
	if err := waitPidfd(run.pidfd, 30*time.Second); err != nil {
		t.Fatalf("lesson check did not end 30 s after SIGQUIT: %v\n%s", err, out.String())
	}
	err = cmd.Wait()
	s := out.String()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("lesson check, sent SIGQUIT: %v, want exit status 1 as on SIGINT\n%s", err, s)
	}
	if !strings.Contains(s, "interrupted: exec sh (SIGINT)") || !strings.Contains(s, "FAIL  lesson") {
		t.Errorf("lesson check does not say that the line was interrupted and the lesson failed:\n%s", s)
	}
	if strings.Contains(s, "goroutine ") || strings.Contains(s, "SIGQUIT: quit") {
		t.Errorf("lesson check dumped its goroutines on SIGQUIT:\n%s", s)
	}
	left := hoststate.SessionLeft(state, cmd.Process.Pid)
	for deadline := time.Now().Add(2 * time.Second); len(left) > 0 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		left = hoststate.SessionLeft(state, cmd.Process.Pid)
	}
	if len(left) > 0 {
		t.Errorf("SIGQUIT left of the lesson's session:\n%s", strings.Join(left, "\n"))
	}
}
