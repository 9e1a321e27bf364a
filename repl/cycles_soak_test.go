package repl

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"stepbox/primitives"
	"stepbox/primitives/hoststate"
)

// The reliability suite of issue 7. `make test` runs a bounded version;
// `make soak` sets STEPBOX_SOAK=1 for the full one. Each test logs its
// figures on a line starting "soak:", which `make soak` collects.

func soak() bool { return os.Getenv("STEPBOX_SOAK") == "1" }

func openFDs(tb testing.TB) []string {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		out = append(out, e.Name()+" -> "+l)
	}
	return out
}

// fdDiff lists the fds open now that were not before; the fd ReadDir
// itself holds is the same in both lists.
func fdDiff(before, after []string) []string {
	seen := map[string]bool{}
	for _, f := range before {
		seen[f] = true
	}
	var out []string
	for _, f := range after {
		if !seen[f] {
			out = append(out, f)
		}
	}
	return out
}

// Build the full container and tear it down, over and over, in one
// session: nothing may pile up on the host or in the session.
func TestBuildAndTeardownCyclesLeakNothing(t *testing.T) {
	needRoot(t)
	cycles := 20
	if soak() {
		cycles = 1000
	}
	ts := newTestShell(t, "")
	cycle := func() {
		ts.out.Reset()
		ts.do(t, fullContainer...)
		ts.do(t, "rm c")
	}
	// The first cycle opens what a session keeps: the layer store, the
	// cgroup hierarchy, stepbox's parent cgroup.
	cycle()
	base, err := hoststate.Capture()
	if err != nil {
		t.Fatal(err)
	}
	fds := openFDs(t)
	goroutines := runtime.NumGoroutine()
	boxesDir := filepath.Join(ts.Session.Dir, "boxes")
	leaks := 0
	start := time.Now()
	done := 1
	for i := 2; i <= cycles; i++ {
		cycle()
		done = i
		now, err := hoststate.Capture()
		if err != nil {
			t.Fatal(err)
		}
		if d := stepboxDiff(base, now); d != "" {
			leaks++
			t.Errorf("cycle %d left on the host:\n%s", i, d)
		}
		if left := fdDiff(fds, openFDs(t)); len(left) > 0 {
			leaks++
			t.Errorf("cycle %d left fds open in the session: %v", i, left)
		}
		if ents, _ := os.ReadDir(boxesDir); len(ents) > 0 {
			leaks++
			t.Errorf("cycle %d left box state dirs: %v", i, ents)
		}
		if t.Failed() {
			break
		}
	}
	// Goroutines that pump a command's output end a moment after it.
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > goroutines {
		leaks++
		t.Errorf("goroutines grew from %d to %d over %d cycles", goroutines, g, cycles)
	}
	t.Logf("soak: cycles=%d leaks=%d ms/cycle=%.1f", done, leaks, float64(time.Since(start).Milliseconds())/float64(max(done-1, 1)))
}

// crashSteps are the full container's steps one by one, each namespace
// on its own line, so a crash can fall after each.
var crashSteps = []string{
	"new c",
	"unshare uts", "unshare ipc", "unshare net", "unshare pid", "unshare mnt",
	"mount overlay base fileA", "pivot_root", "mount proc",
	"cgroup new", "cgroup limit pids 64", "cgroup limit memory 64M", "cgroup attach",
	"exec true",
	"exec sh -c 'sleep 300 >/dev/null 2>&1 &'",
}

// crashAndCleanup kills the session with SIGKILL and runs `stepbox
// cleanup`: the host must be as it was, with no stepbox process or state.
func crashAndCleanup(t *testing.T, dir string, cmd *exec.Cmd) {
	t.Helper()
	cmd.Process.Kill()
	cmd.Wait()
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	assertNoSessions(t, dir)
	if left := hoststate.StepboxProcesses(); len(left) > 0 {
		t.Fatalf("processes left after cleanup: %v", left)
	}
}

// Kill -9 the session right after each step of the full container, then
// `stepbox cleanup`: mounts, cgroups, hostname, links and processes are
// as before. The bounded run covers two steps; the soak run every step,
// and kills at random moments in the middle of building.
func TestCleanupAfterKill9AtEveryStep(t *testing.T) {
	needRoot(t)
	points := []int{4, 12}
	if soak() {
		points = nil
		for k := range crashSteps {
			points = append(points, k)
		}
	}
	for _, k := range points {
		t.Run(strings.ReplaceAll(crashSteps[k], " ", "_"), func(t *testing.T) {
			stepboxUnchanged(t)
			dir := t.TempDir()
			cmd, w := startSession(t, dir, strings.Join(crashSteps[:k+1], "\n")+"\n")
			defer w.Close()
			crashAndCleanup(t, dir, cmd)
		})
	}
	random := 0
	if soak() {
		random = 30
	}
	for i := 0; i < random; i++ {
		delay := time.Duration(rand.IntN(120)) * time.Millisecond
		t.Run(fmt.Sprintf("mid-step_after_%v", delay), func(t *testing.T) {
			stepboxUnchanged(t)
			dir := t.TempDir()
			// The layers exist first, so the kill falls among the steps.
			if out, code := runStepbox(t, dir, "layers\n"); code != 0 {
				t.Fatalf("layers: %s", out)
			}
			cmd := exec.Command(stepboxBinary(t), "--state-dir", dir, "run", "-")
			cmd.Stdin = strings.NewReader(strings.Join(crashSteps, "\n") + "\n")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			childStepbox(t, cmd, dir, syscall.SIGTERM)
			time.Sleep(delay)
			crashAndCleanup(t, dir, cmd)
		})
	}
	t.Logf("soak: crash_points=%d random_kills=%d leaks=0", len(points), random)
}

// A box process, or its PID 1, killed from outside: the session notices
// at the next step and says so plainly, and `rm` cleans up.
func TestSessionNoticesAKilledBoxProcess(t *testing.T) {
	needRoot(t)
	for _, which := range []string{"box process", "PID 1"} {
		t.Run(strings.ReplaceAll(which, " ", "_"), func(t *testing.T) {
			ts := newTestShell(t, "")
			// The sealed copy of stepbox is made once per process, at the
			// first box: made before counting, it is no leak of this box's.
			if _, err := primitives.SelfExe(); err != nil {
				t.Fatal(err)
			}
			fds := openFDs(t)
			ts.do(t, fullContainer...)
			b := ts.Current()
			pid := b.PID()
			if which == "PID 1" {
				pid = b.InitPID()
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			// The kill lands asynchronously.
			deadline := time.Now().Add(5 * time.Second)
			for b.Alive() == nil && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			ts.out.Reset()
			ts.do(t, "boxes")
			if !strings.Contains(ts.out.String(), "exited") {
				t.Errorf("`boxes` does not show box c as exited after its %s was killed:\n%s", which, ts.out.String())
			}
			err := ts.Execute(context.Background(), "exec true")
			if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "rm c") {
				t.Errorf("exec true in a box whose %s was killed: %v; want a plain report that it exited and that `rm c` cleans up", which, err)
			}
			var ce *CommandError
			if err != nil && !errors.As(err, &ce) {
				t.Errorf("the report is not a command error: %T %v", err, err)
			}
			ts.do(t, "rm c")
			if left := fdDiff(fds, openFDs(t)); len(left) > 0 {
				t.Errorf("fds left open in the session after rm of a box whose %s died: %v", which, left)
			}
		})
	}
}
