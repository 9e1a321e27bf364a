package repl

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/hoststate"
)

// A stepbox process a test started (in a tmux pane, or as its own child)
// must have torn down before the test's temp dir goes: testing's
// cleanup removes the state dir, and a session still tearing down then
// loses its ledger and leaves its boxes' upper tmpfs mounted on the host
// (issue 15). t.Cleanup runs last-registered first, and the temp dir's
// removal is registered at a test's first TempDir call: a cleanup
// registered after it runs before the removal.

// endWithin is how long a session may take to tear down once its
// terminal has closed, before it is killed (the slow VM included).
const endWithin = 30 * time.Second

// stepboxRun is a stepbox session a test started: its process, held by a
// pidfd (a PID reused later is never signalled), and its state dir.
type stepboxRun struct {
	pid, pidfd int
	bin, dir   string // the stepbox binary, and the state dir
	// reap waits for the process where the test is its parent (a zombie
	// still counts as a live session for `stepbox cleanup`); nil for a
	// process in a pane, which its shell or init reaps.
	reap func()
}

// watchStepbox holds process pid, a session of binary bin on state dir
// dir.
func watchStepbox(t testing.TB, bin string, pid int, dir string, reap func()) *stepboxRun {
	t.Helper()
	r, err := holdStepbox(bin, pid, dir, reap)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func holdStepbox(bin string, pid int, dir string, reap func()) (*stepboxRun, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	return &stepboxRun{pid: pid, pidfd: fd, bin: bin, dir: dir, reap: reap}, nil
}

// childStepbox holds cmd, a stepbox session the test started on state
// dir dir, and ends it at the test's cleanup (endAtCleanup) with hangUp
// as a user would: SIGTERM (a `kill`) for one reading a pipe or a
// script, SIGHUP (its terminal closed) for one on a pty.
func childStepbox(t testing.TB, cmd *exec.Cmd, dir string, hangUp unix.Signal) *stepboxRun {
	t.Helper()
	r := watchStepbox(t, cmd.Path, cmd.Process.Pid, dir, func() {
		if cmd.ProcessState == nil {
			cmd.Wait()
		}
	})
	endAtCleanup(t, r, func() { r.signal(hangUp) })
	return r
}

// signal sends sig to the session, if it still runs.
func (r *stepboxRun) signal(sig unix.Signal) {
	if r.pidfd >= 0 {
		unix.PidfdSendSignal(r.pidfd, sig, nil, 0)
	}
}

// release lets go of a session that ended as the test wanted, whose
// state dir the test has checked itself.
func (r *stepboxRun) release() {
	if r.pidfd >= 0 {
		unix.Close(r.pidfd)
		r.pidfd = -1
	}
}

// endAtCleanup makes the test's cleanup end run before its temp dir goes:
// hangUp ends it as a user would, then run.end waits for it, kills it
// and runs `stepbox cleanup` if it must, and what it found is an error.
func endAtCleanup(t testing.TB, run *stepboxRun, hangUp func()) {
	t.Cleanup(func() {
		hangUp()
		for _, problem := range run.end(endWithin) {
			t.Error(problem)
		}
	})
}

// end waits, up to within, for the session to end (it has been hung up
// on); if it still runs, SIGKILLs it. Once it is gone, what it left of
// its state dir is removed with `stepbox cleanup`. It returns what went
// wrong, a line each: nothing when the session tore down by itself.
func (r *stepboxRun) end(within time.Duration) []string {
	if r.pidfd < 0 {
		return nil
	}
	defer r.release()
	var problems []string
	killed := false
	if waitPidfd(r.pidfd, within) != nil {
		killed = true
		problems = append(problems, fmt.Sprintf("stepbox %d (state dir %s) still ran %v after it was hung up on: SIGKILLed it, then `stepbox cleanup`", r.pid, r.dir, within))
		if err := unix.PidfdSendSignal(r.pidfd, unix.SIGKILL, nil, 0); err != nil {
			problems = append(problems, fmt.Sprintf("pidfd_send_signal(%d, SIGKILL): %v", r.pid, err))
		}
		if err := waitPidfd(r.pidfd, 10*time.Second); err != nil {
			return append(problems, fmt.Sprintf("stepbox %d still runs 10 s after SIGKILL (%v): its state dir %s is left as it is", r.pid, err, r.dir))
		}
	}
	if r.reap != nil {
		r.reap()
	}
	if !r.reaped(10 * time.Second) {
		return append(problems, fmt.Sprintf("stepbox %d ended but neither was reaped nor became a zombie in 10 s: `stepbox cleanup` would take it for a live session", r.pid))
	}
	// A host command the session ran (`!ls`) may still be ending: it
	// gets SIGPIPE at its next write once the session is gone.
	left := hoststate.SessionLeft(r.dir, r.pid)
	for deadline := time.Now().Add(2 * time.Second); len(left) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		left = hoststate.SessionLeft(r.dir, r.pid)
	}
	if !killed && len(left) == 0 {
		return problems
	}
	for _, l := range left {
		problems = append(problems, fmt.Sprintf("stepbox %d left: %s", r.pid, l))
	}
	out, err := exec.Command(r.bin, "--state-dir", r.dir, "cleanup").CombinedOutput()
	if err != nil {
		problems = append(problems, fmt.Sprintf("stepbox --state-dir %s cleanup: %v\n%s", r.dir, err, out))
	}
	for _, l := range hoststate.SessionLeft(r.dir, r.pid) {
		problems = append(problems, fmt.Sprintf("still left after `stepbox cleanup`: %s", l))
	}
	return problems
}

// reaped waits until the ended process is gone from /proc (reaped by
// its parent, or a new process with its PID started later) or is a
// zombie, which `stepbox cleanup` takes for an ended session: in a
// container whose PID 1 reaps nothing (make test-container) an orphaned
// session stays one.
func (r *stepboxRun) reaped(within time.Duration) bool {
	start, _, err := procStartState(r.pid)
	for deadline := time.Now().Add(within); err == nil; time.Sleep(20 * time.Millisecond) {
		if now, zombie, err := procStartState(r.pid); err != nil || now != start || zombie {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// procStartState is pid's start time, and whether it is a zombie.
func procStartState(pid int) (uint64, bool, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, false, err
	}
	st, err := p.Stat()
	return st.Starttime, st.State == "Z", err
}

// stepboxInPane finds the stepbox process the pane's shell started with
// state dir dir, waiting for the shell to have exec'd it.
func (p *tmuxPane) stepboxInPane(dir string) int {
	p.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for pid, d := range p.stepboxes() {
			if d == dir && !p.holds(pid) {
				return pid
			}
		}
	}
	p.t.Fatalf("no stepbox with state dir %s in the pane after 20 s", dir)
	return 0
}

// stepboxes are the stepbox processes the pane's shell runs (its
// children running the stepbox binary), each with its state dir.
func (p *tmuxPane) stepboxes() map[int]string {
	out, err := exec.Command("tmux", "-S", p.sock, "display-message", "-p", "-t", "0", "#{pane_pid}").Output()
	bin, err2 := os.Stat(stepboxBinary(p.t))
	if err != nil || err2 != nil {
		return nil
	}
	shell := strings.TrimSpace(string(out))
	found := map[int]string{}
	procs, _ := procfs.AllProcs()
	for _, pr := range procs {
		st, err := pr.Stat()
		if err != nil || fmt.Sprint(st.PPID) != shell {
			continue
		}
		exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pr.PID))
		args, _ := pr.CmdLine()
		if i := slices.Index(args, "--state-dir"); err == nil && os.SameFile(exe, bin) && i > 0 && i+1 < len(args) {
			found[pr.PID] = args[i+1]
		}
	}
	return found
}

// holds says whether the pane already holds the session of process pid.
func (p *tmuxPane) holds(pid int) bool {
	return slices.ContainsFunc(p.runs, func(r *stepboxRun) bool { return r.pid == pid })
}

// A test that stops while its session is mid-step (a failed wait, a
// timeout) leaves nothing of the session's state dir on the host: the
// pane's cleanup closes the terminal and waits for stepbox's teardown
// before the dir goes; a session that has not ended in time is killed
// and `stepbox cleanup` removes what it left (issue 15: failed runs had
// left three upper tmpfs mounts). The second case gives it no time at
// all, so it is killed while it tears down; in the third, the test typed
// stepbox's command line itself, and the pane finds the session.
func TestAPaneSessionEndedMidStepLeavesNothingOfItsStateDir(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for _, c := range []struct {
		name   string
		within time.Duration
		typed  bool
	}{{"hung_up", endWithin, false}, {"killed_while_it_tears_down", 0, false}, {"typed_by_the_test", endWithin, true}} {
		t.Run(c.name, func(t *testing.T) {
			p := newTmuxPane(t)
			dir := t.TempDir()
			line := stepboxBinary(t) + " --state-dir " + dir + "; echo STEPBOX-EXIT=$?"
			if c.typed {
				p.line(line)
			} else {
				p.stepbox(dir, line)
			}
			p.waitFor("stepbox ▸")
			p.line("new a")
			p.waitFor("a[] ▸")
			p.line("cgroup new")
			p.waitFor("a[cg] ▸")
			pid := 0
			for k, d := range p.stepboxes() {
				if d == dir {
					pid = k
				}
			}
			// What the check below looks for is there while the session runs.
			made := strings.Join(hoststate.SessionLeft(dir, pid), "\n")
			if !strings.Contains(made, "tmpfs from stepbox-upper") || !strings.Contains(made, "cgroup /sys/fs/cgroup/") {
				t.Fatalf("box a has no upper tmpfs or cgroup under %s to leave behind:\n%s", dir, made)
			}
			p.line("exec sleep 1093")
			for deadline := time.Now().Add(20 * time.Second); len(sleepingFor("1093")) == 0; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("exec sleep 1093 never started:\n%s", p.screen())
				}
			}

			problems := p.end(c.within)
			if c.within > 0 && len(problems) > 0 {
				t.Errorf("a session hung up on mid-step did not tear down by itself:\n%s", strings.Join(problems, "\n"))
			}
			if c.within == 0 {
				if len(problems) == 0 || !strings.Contains(problems[0], "SIGKILLed it") {
					t.Errorf("a session given no time was not killed: %q", problems)
				}
				for _, pr := range problems[1:] {
					if !strings.HasPrefix(pr, fmt.Sprintf("stepbox %d left: ", pid)) {
						t.Errorf("after the kill: %s", pr)
					}
				}
			}
			if left := hoststate.SessionLeft(dir, pid); len(left) > 0 {
				t.Errorf("the session's state dir %s still has, on the host:\n%s", dir, strings.Join(left, "\n"))
			}
			if s := sleepingFor("1093"); len(s) > 0 {
				t.Errorf("the box's command is left running: %v", s)
			}
		})
	}
}
