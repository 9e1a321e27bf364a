package primitives

import (
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/prometheus/procfs"
)

// procStamp names one process for as long as it runs: a PID is reused
// once its process is gone, its start time (clock ticks after boot) with
// it is not.
type procStamp struct {
	PID   int
	Start uint64
}

// olderStamps are the box's processes that run now, other than stepbox's
// executor (the box process and PID 1): taken right after a step whose
// effect a running process does not get (pivot_root, chroot, a seccomp
// filter), they are the processes that stay outside it for as long as
// they run (ut34 F1, F11).
func (b *Box) olderStamps() []procStamp {
	procs, err := b.holderCandidates()
	if err != nil {
		return nil
	}
	own := []int{b.PID(), b.InitPID()}
	var out []procStamp
	for _, p := range procs {
		if slices.Contains(own, p.PID) || len(out) >= holdProcs {
			continue
		}
		if start, ok := startOf(p.PID); ok {
			out = append(out, procStamp{p.PID, start})
		}
	}
	return out
}

// stillRuns reports whether process pid is one of stamps and still the
// process stamped (the same start time).
func stillRuns(stamps []procStamp, pid int) bool {
	i := slices.IndexFunc(stamps, func(s procStamp) bool { return s.PID == pid })
	if i < 0 {
		return false
	}
	start, ok := startOf(pid)
	return ok && start == stamps[i].Start
}

// startOf is process pid's start time, in clock ticks after boot.
func startOf(pid int) (uint64, bool) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, false
	}
	st, err := p.Stat()
	if err != nil {
		return 0, false
	}
	return st.Starttime, true
}

// holdTasks bounds the threads read of one process: a box may start
// thousands.
const holdTasks = 256

// taskIDs are the threads of process pid (the thread group leader
// first), at most holdTasks of them, and whether there were more.
func taskIDs(pid int) ([]int, bool) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return []int{pid}, false
	}
	names, _ := f.Readdirnames(holdTasks + 1)
	f.Close()
	out := []int{pid}
	cut := false
	for _, n := range names {
		tid, err := strconv.Atoi(n)
		if err != nil || tid == pid {
			continue
		}
		if len(out) >= holdTasks {
			cut = true
			break
		}
		out = append(out, tid)
	}
	return out, cut
}
