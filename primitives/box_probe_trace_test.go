package primitives

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/probe"
)

// envHunt makes the test binary, started in a box, a process of the box
// that goes after the box's next probe (ut31 F3). "try:BOXPID" waits until
// the probe runs Go (past its constructors) and tries, read-only, to
// ptrace it (PTRACE_SEIZE, PTRACE_ATTACH) and to open its /proc/PID/fd/1
// and mem, printing one line per try; "hold:BOXPID" traces it as soon as
// it sees it and holds it stopped a moment, as a tracer that makes its
// syscalls fail would. BOXPID is the box process, the probe's parent.
const envHunt = "STEPBOX_TEST_HUNT"

// hunt is the test binary as envHunt's hunter: it goes after the first
// probe it sees within a minute.
func hunt(arg string) int {
	runtime.LockOSThread() // ptrace(2) is per thread
	mode, box, _ := strings.Cut(arg, ":")
	parent, err := strconv.Atoi(box)
	if err != nil || mode != "try" && mode != "hold" {
		fmt.Println("bad", envHunt, arg)
		return 2
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		pid := probeChild(parent)
		if pid == 0 {
			continue
		}
		if mode == "hold" {
			if err := holdTraced(pid); err != nil {
				fmt.Printf("hold %d: %v\n", pid, err)
				return 1
			}
			fmt.Printf("held %d\n", pid)
			return 0
		}
		// Past the constructors, where the probe makes itself
		// non-dumpable: the Go runtime has started its threads.
		for threadCount(pid) < 2 {
			if threadCount(pid) < 0 {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		if threadCount(pid) < 0 {
			continue // it ended first: wait for the next
		}
		say := func(name string, err error) {
			if err == nil {
				fmt.Printf("%s %d: ok\n", name, pid)
			} else {
				fmt.Printf("%s %d: %v\n", name, pid, err)
			}
		}
		err := unix.PtraceSeize(pid)
		if err == nil {
			// Let it go at once: the exit of this process would too.
			unix.PtraceInterrupt(pid)
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WALL, nil)
			unix.PtraceDetach(pid)
		}
		say("seize", err)
		err = unix.PtraceAttach(pid)
		if err == nil {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WALL, nil)
			unix.PtraceDetach(pid)
		}
		say("attach", err)
		for _, f := range []string{"fd/1", "mem"} {
			fh, err := os.Open(fmt.Sprintf("/proc/%d/%s", pid, f))
			if err == nil {
				fh.Close()
			}
			say(f, err)
		}
		fmt.Println("done")
		return 0
	}
	fmt.Println("no probe seen")
	return 1
}

// probeChild is a process of parent's that runs `stepbox __probe`, 0 for
// none. Its children's list, not a scan of /proc: a probe runs for some
// milliseconds only. The box process is one thread (executor.c).
func probeChild(parent int) int {
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", parent, parent))
	for _, k := range strings.Fields(string(kids)) {
		cmd, _ := os.ReadFile("/proc/" + k + "/cmdline")
		if strings.Contains(string(cmd), "\x00"+entryProbe+"\x00") {
			pid, _ := strconv.Atoi(k)
			return pid
		}
	}
	return 0
}

// threadCount is the number of threads of pid, -1 once it is gone.
func threadCount(pid int) int {
	n, err := statusNumber(pid, "Threads")
	if err != nil {
		return -1
	}
	return n
}

// holdTraced traces pid (PTRACE_SEIZE), holds it stopped for 100ms, then
// lets it run traced until it exits, passing on its signals. Called on a
// locked OS thread.
func holdTraced(pid int) error {
	if err := unix.PtraceSeize(pid); err != nil {
		return fmt.Errorf("PTRACE_SEIZE: %w", err)
	}
	if err := unix.PtraceInterrupt(pid); err != nil {
		return fmt.Errorf("PTRACE_INTERRUPT: %w", err)
	}
	held := false
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
			if errors.Is(err, unix.ECHILD) {
				return nil
			}
			return fmt.Errorf("wait4: %w", err)
		}
		if ws.Exited() || ws.Signaled() {
			return nil
		}
		sig := 0
		if ws.TrapCause() == unix.PTRACE_EVENT_STOP {
			if !held {
				time.Sleep(100 * time.Millisecond)
				held = true
			}
		} else if ws.Stopped() {
			sig = int(ws.StopSignal())
		}
		if err := unix.PtraceCont(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("PTRACE_CONT: %w", err)
		}
	}
}

// huntedBox is a box in the host's namespaces (the host's /proc shows its
// probe by its host PID) hardened as in ut31 F3, unless harden is false,
// and the path of the test binary for it to run.
func huntedBox(t *testing.T, name string, harden bool) (*Box, string) {
	t.Helper()
	path := attacker(t)
	s := newTestSession(t)
	b, _, err := s.NewBox(name, false)
	if err != nil {
		t.Fatal(err)
	}
	if harden {
		for _, verb := range []string{"caps docker", "nnp", "seccomp docker"} {
			if _, err := b.ApplySecurity(verb, nil); err != nil {
				t.Fatalf("%s: %v", verb, err)
			}
		}
	}
	return b, path
}

// startHunter starts the test binary in box b as envHunt's hunter in
// mode, in the background, writing to a file it returns.
func startHunter(t *testing.T, b *Box, path, mode string) string {
	t.Helper()
	log := filepath.Join(filepath.Dir(path), "hunter.log")
	env := []string{fmt.Sprintf("%s=%s:%d", envHunt, mode, b.PID())}
	sh := fmt.Sprintf("%s </dev/null >%s 2>&1 &", path, log)
	if es, err := b.Exec(context.Background(), []string{"/bin/sh", "-c", sh}, env, Stdio{}); err != nil || es.Code != 0 {
		t.Fatalf("start the hunter: %v, exit %d", err, es.Code)
	}
	return log
}

// waitLog waits until the hunter's log has a line starting with one of
// ends, and returns the log.
func waitLog(t *testing.T, log string, ends ...string) string {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		data, _ := os.ReadFile(log)
		for _, l := range strings.Split(string(data), "\n") {
			for _, e := range ends {
				if strings.HasPrefix(l, e) {
					return string(data)
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hunter wrote no %q line:\n%s", ends, data)
		}
	}
}

// A process of the box, with the box's uid, cannot trace the probe nor
// open its descriptors once it runs: the probe makes itself non-dumpable
// first thing (ut31 F3). Before, PTRACE_SEIZE succeeded, after caps
// docker, nnp and seccomp docker too, and the tracer could make every
// probe say closed.
func TestABoxProcessCannotTraceTheProbe(t *testing.T) {
	needRoot(t)
	b, path := huntedBox(t, "hunted", true)
	log := startHunter(t, b, path, "try")
	// The hunter starts in the background: it may miss a first probe.
	for range 5 {
		rs, _, err := b.Probe(context.Background(), []string{"proc_root", "ptrace", "sys"})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Via == probe.Traced {
				t.Errorf("probe %s refused: %s", r.Name, r.Evidence)
			}
		}
		if data, _ := os.ReadFile(log); strings.Contains(string(data), "done\n") {
			break
		}
	}
	out := waitLog(t, log, "done", "no probe seen")
	t.Logf("the hunter:\n%s", out)
	// A probe may end between two tries (ESRCH, ENOENT: gone, not
	// reached); at least one try must have met the probe, and none
	// reached it.
	tries, refused := 0, 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "done" {
			continue
		}
		tries++
		switch {
		case strings.HasSuffix(l, ": operation not permitted"), strings.HasSuffix(l, ": permission denied"):
			refused++
		case strings.HasSuffix(l, ": no such process"), strings.HasSuffix(l, ": no such file or directory"):
		default:
			t.Errorf("from a process of the box: %s, want EPERM or EACCES", l)
		}
	}
	if tries != 4 || refused == 0 {
		t.Errorf("the hunter made %d tries, %d refused; want 4, at least one refused:\n%s", tries, refused, out)
	}
}

// A probe something traced while it ran gives no report: the session
// reads its TracerPid from the host and makes every probe unknown, naming
// the tracer. Here the tracer is the test, as root on the host, which
// may trace even a non-dumpable process; before, the session took the
// traced probe's report as it came.
func TestATracedProbesReportIsRefused(t *testing.T) {
	needRoot(t)
	b, _ := huntedBox(t, "traced", false)
	box := b.PID()
	held := make(chan error, 1)
	go func() {
		// The tracer is this thread. Unlocked at the end, not ended with
		// the goroutine: the box process dies with the thread that
		// started it (PR_SET_PDEATHSIG), which this one may be.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
			if pid := probeChild(box); pid != 0 {
				held <- holdTraced(pid)
				return
			}
		}
		held <- errors.New("no probe seen")
	}()
	rs, _, err := b.Probe(context.Background(), []string{"proc_root", "ptrace", "sys"})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-held; err != nil {
		t.Fatalf("the test's tracer: %v", err)
	}
	want := fmt.Sprintf("process host PID %d ", os.Getpid())
	for _, r := range rs {
		t.Logf("%-18s %-8s %-8s %s", r.Name, r.State, r.Via, r.Evidence)
		if r.State != probe.Unknown || r.Via != probe.Traced || !strings.Contains(r.Evidence, want) || !strings.Contains(r.Evidence, "traced the probe") {
			t.Errorf("probe %s of a traced probe: %s (%s), want unknown, saying %q traced the probe", r.Name, r.State, r.Evidence, want)
		}
	}
	if len(rs) != 3 {
		t.Errorf("%d results, want 3", len(rs))
	}
}

// A box that keeps CAP_SYS_PTRACE may still trace the probe: its report
// is refused, naming the box's process by its PID and command line.
func TestAProbeTheBoxTracesIsRefusedNamingTheTracer(t *testing.T) {
	needRoot(t)
	b, path := huntedBox(t, "tracer", false)
	log := startHunter(t, b, path, "hold")
	// The hunter starts in the background: it may miss a first probe.
	var rs []ProbeResult
	for range 5 {
		var err error
		if rs, _, err = b.Probe(context.Background(), []string{"proc_root", "ptrace", "sys"}); err != nil {
			t.Fatal(err)
		}
		if rs[0].Via == probe.Traced {
			break
		}
	}
	out := waitLog(t, log, "held ", "hold ", "no probe seen")
	if !strings.HasPrefix(out, "held ") {
		t.Fatalf("the hunter:\n%s", out)
	}
	for _, r := range rs {
		t.Logf("%-18s %-8s %-8s %s", r.Name, r.State, r.Via, r.Evidence)
		if r.State != probe.Unknown || !strings.Contains(r.Evidence, "box process PID ") || !strings.Contains(r.Evidence, path) || !strings.Contains(r.Evidence, "traced the probe") {
			t.Errorf("probe %s of a probe the box traced: %s (%s), want unknown, naming box process %s", r.Name, r.State, r.Evidence, path)
		}
	}
}

// The session accepts a probe's report only once it has read the probe's
// TracerPid at least once and seen it 0: a probe that ended before the
// session could look (or whose PID it could not tell, 0) is refused, as
// a tracer could have made it write its report and exit at once.
func TestAProbeTheSessionNeverLookedAtIsRefused(t *testing.T) {
	w := &tracerWatch{}
	w.start(0)()
	if why := w.refused(); !strings.Contains(why, "could not read the probe's TracerPid") {
		t.Errorf("a probe whose PID the session could not tell: refused %q, want it refused saying the session could not look", why)
	}
	// A process already reaped: nothing to read.
	gone, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gone.Wait(); err != nil {
		t.Fatal(err)
	}
	w = &tracerWatch{}
	w.start(gone.Pid)()
	if why := w.refused(); why == "" {
		t.Errorf("a probe that had ended before the session looked: its report is accepted")
	}
	// This process, untraced: looked at, nothing seen.
	w = &tracerWatch{}
	stop := w.start(os.Getpid())
	time.Sleep(20 * time.Millisecond)
	stop()
	if why := w.refused(); why != "" || w.seen == 0 {
		t.Errorf("an untraced process looked at %d times: refused %q, want accepted", w.seen, why)
	}
}
