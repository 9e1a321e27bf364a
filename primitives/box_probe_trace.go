package primitives

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"

	"stepbox/primitives/probe"
)

// A process that traces the probe can make each of its syscalls fail, and
// the probe then reports a hole closed that is open (ut31 F3). The probe
// makes itself non-dumpable first thing (executor.c, stepbox_probe), so
// that a box process without CAP_SYS_PTRACE cannot attach to it; one that
// attached before that, between its execve(2) and its prctl(2), stays
// attached. The session reads the probe's TracerPid from the host, where
// no tracer can change what it reads, while the probe runs, and refuses
// the report of a probe it saw traced: every probe of it is then unknown.
// It does not see a tracer that came and went between two looks (see
// executor.c): a look every tracerPoll narrows that, and a probe it never
// once looked at is refused too.

// tracerPoll is how often the session reads a running probe's TracerPid.
var tracerPoll = 2 * time.Millisecond

// tracerWatch reads the TracerPid of one probe process while it runs.
type tracerWatch struct {
	box  int // the box process's host PID: the box's processes descend from it
	mu   sync.Mutex
	pid  int    // the probe's host PID, 0 when the session could not tell it
	seen int    // looks that read its status
	who  string // the first tracer seen, "" for none
	// release is the write end of the probe's stdin, closed once the
	// session has looked (or cannot): the probe waits for its end
	// before it probes, so that it is looked at alive at least once.
	release *os.File
	once    sync.Once
}

// let lets the probe go on: its stdin ends.
func (w *tracerWatch) let() {
	w.once.Do(func() {
		if w.release != nil {
			w.release.Close()
		}
	})
}

// start is execFile.Watch: it looks at once, then every tracerPoll, until
// stop, or until it has seen a tracer or the process has gone.
func (w *tracerWatch) start(pid int) (stop func()) {
	w.mu.Lock()
	w.pid = pid
	w.mu.Unlock()
	if pid <= 0 {
		w.let()
		return func() {}
	}
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		tick := time.NewTicker(tracerPoll)
		defer tick.Stop()
		again := w.look()
		w.let()
		for again {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			again = w.look()
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// look reads the probe's TracerPid once; it says whether to look again.
func (w *tracerWatch) look() bool {
	tracer, err := tracerPID(w.pid)
	if err != nil {
		return false // it has ended: the executor reaps it
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen++
	if tracer == 0 {
		return true
	}
	w.who = tracerName(tracer, w.box)
	return false
}

// refused is why the session refuses the probe's report: "" when it looked
// at the probe and saw no tracer.
func (w *tracerWatch) refused() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.who != "":
		return fmt.Sprintf("%s traced the probe (the TracerPid of /proc/%d/status, read from the host); a tracer can make the probe's syscalls fail, so its report is refused", w.who, w.pid)
	case w.seen == 0:
		return "the session could not read the probe's TracerPid (/proc/PID/status) before it ended, to see that nothing traced it, so its report is refused"
	}
	return ""
}

// traced reports whether the watch saw a tracer.
func (w *tracerWatch) traced() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.who != ""
}

// tracerPID is the TracerPid line of /proc/PID/status (proc(5)): the
// thread, in the session's PID namespace, that traces pid, 0 for none.
// procfs's ProcStatus leaves that line out.
func tracerPID(pid int) (int, error) { return statusNumber(pid, "TracerPid") }

// statusNumber is the number on line key of /proc/PID/status.
func statusNumber(pid int, key string) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: %s %q: %w", pid, key, v, err)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s line", pid, key)
}

// tracerName names the process of thread tid (a TracerPid) for the
// learner: a process of the box (box, its box process's host PID) by its
// PID in the box, and its command line, escaped (the box chose it).
func tracerName(tid, box int) string {
	pid, err := statusNumber(tid, "Tgid")
	if err != nil {
		return fmt.Sprintf("thread host PID %d (gone)", tid)
	}
	proc, err := procfs.NewProc(pid)
	if err != nil {
		return fmt.Sprintf("process host PID %d (gone)", pid)
	}
	stat, err := proc.Stat()
	if err != nil {
		return fmt.Sprintf("process host PID %d (gone)", pid)
	}
	n := ReadProcess(proc, stat)
	cmd := printable(cmdOf(n), 60)
	// A process the box process started: the executor is alive, its
	// PID not reused.
	if !slices.ContainsFunc(ancestry(pid), func(a pidStart) bool { return a.pid == box }) {
		return fmt.Sprintf("process host PID %d %s", pid, cmd)
	}
	if n.BoxPID() == pid {
		return fmt.Sprintf("box process PID %d %s", pid, cmd)
	}
	return fmt.Sprintf("box process PID %d (host PID %d) %s", n.BoxPID(), pid, cmd)
}

// closesTraced is what keeps a box's processes from tracing the probe.
// Without CAP_SYS_PTRACE a box process can still attach between the
// probe's execve and its prctl: one that polls for it wins that race.
const closesTraced = "end the tracer (`exec kill PID`) and probe again; caps docker (no CAP_SYS_PTRACE) leaves a box process only the moment between the probe's execve and its prctl, which one that waits for the probe can still catch"

// refusedResults are the answers of the in-box probes asked (all without
// names) when the session refuses the probe's report: unknown, saying why.
func refusedResults(names []string, why string) []ProbeResult {
	var out []ProbeResult
	for _, n := range askedInBox(names) {
		out = append(out, ProbeResult{Result: probe.Result{Name: n, State: probe.Unknown, Via: probe.Traced, Evidence: "unknown: " + why}, Closes: closesTraced})
	}
	return out
}
