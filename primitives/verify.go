package primitives

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// What an executor answers is what a box says: a box that took over its
// executor (a privileged box may ptrace it) can answer anything. Before
// the session signals a process, writes its PID anywhere or joins its
// namespaces on the strength of an answer, it checks the answer against
// what the host's /proc says, reading from outside the box.

// hostChild is a process the session found, from the host, to be a child
// of one of the box's executors.
type hostChild struct {
	pid   int    // host PID
	start uint64 // its start time, which tells it from a later reuse of the PID
}

// verifyChild checks that host PID pid is a child of the executor at
// host PID parent, and that its PID in its own innermost PID namespace
// is inner (proc(5), NSpid): what the executor claimed to have forked.
// It holds a pidfd while it reads, so that the PID cannot change hands
// between the reads.
func verifyChild(pid, parent, inner int) (hostChild, error) {
	if pid <= 0 {
		return hostChild{}, fmt.Errorf("PID %d is not a process", pid)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return hostChild{}, fmt.Errorf("pidfd_open(%d): %w", pid, err)
	}
	defer unix.Close(fd)
	p, err := procfs.NewProc(pid)
	if err != nil {
		return hostChild{}, err
	}
	st, err := p.Stat()
	if err != nil {
		return hostChild{}, err
	}
	if st.PPID != parent {
		return hostChild{}, fmt.Errorf("host PID %d is a child of PID %d, not of the box's executor (PID %d)", pid, st.PPID, parent)
	}
	if got, err := innerPID(pid); err != nil || got != inner {
		return hostChild{}, fmt.Errorf("host PID %d is PID %d in its PID namespace, not %d as the executor said (%v)", pid, got, inner, err)
	}
	// Still the same process once read: a pidfd of an exited process polls readable.
	if n, _ := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 0); n > 0 {
		return hostChild{}, fmt.Errorf("host PID %d exited while it was checked", pid)
	}
	return hostChild{pid: pid, start: st.Starttime}, nil
}

// spawnedChild checks the pidfd an executor sent for the command it
// started as PID inner: a child of the executor, as verifyChild checks.
// It reports false, with no error, when the command has already exited
// (a pidfd of an exited process polls readable; see pidfd_open(2)).
func spawnedChild(pidfd *os.File, parent, inner int) (bool, error) {
	if pidfd == nil {
		return false, nil
	}
	exited := func() bool {
		n, _ := unix.Poll([]unix.PollFd{{Fd: int32(pidfd.Fd()), Events: unix.POLLIN}}, 0)
		return n > 0
	}
	hp, nspid := pidfdIDs(pidfd)
	if hp <= 0 {
		if exited() {
			return false, nil
		}
		return false, fmt.Errorf("the pidfd it sent is not a process of this PID namespace")
	}
	if len(nspid) == 0 {
		// A kernel whose fdinfo shows no NSpid: read /proc.
		if _, err := verifyChild(hp, parent, inner); err != nil {
			if exited() {
				return false, nil
			}
			return false, err
		}
		return true, nil
	}
	// The pidfd's own fdinfo says which process it is and its PID in its
	// PID namespace; only its parent is read from /proc. Held, the pidfd
	// polls readable once the process has exited, so a process found
	// still running at the end is the one every read was about.
	ppid, err := parentOf(hp)
	switch {
	case exited():
		return false, nil
	case err != nil:
		return false, err
	case ppid != parent:
		return false, fmt.Errorf("host PID %d is a child of PID %d, not of the box's executor (PID %d)", hp, ppid, parent)
	case nspid[len(nspid)-1] != inner:
		return false, fmt.Errorf("host PID %d is PID %d in its PID namespace, not %d as the executor said", hp, nspid[len(nspid)-1], inner)
	}
	return true, nil
}

// parentOf reads the parent of host PID pid: the field after the state
// in /proc/PID/stat, past the last ')' (the command name may hold any
// byte).
func parentOf(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return 0, fmt.Errorf("/proc/%d/stat: no parent PID in %q", pid, b)
	}
	return strconv.Atoi(f[1])
}

// innerPID is the PID of host PID pid in its innermost PID namespace: the
// last of NSpid in /proc/PID/status (proc(5)).
func innerPID(pid int) (int, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return 0, err
	}
	st, err := p.NewStatus()
	if err != nil {
		return 0, err
	}
	if len(st.NSpids) == 0 {
		return 0, fmt.Errorf("/proc/%d/status has no NSpid line", pid)
	}
	return int(st.NSpids[len(st.NSpids)-1]), nil
}

// stillTheProcess checks that host PID pid is still the process that
// started at start: not exited, its PID not reused.
func stillTheProcess(pid int, start uint64) error {
	got, err := startTime(pid)
	if err != nil {
		return fmt.Errorf("host PID %d is gone: %w", pid, err)
	}
	if got != start {
		return fmt.Errorf("host PID %d is another process now (start time %d, not %d)", pid, got, start)
	}
	return nil
}

// distrust gives up on an executor whose answer the host's check refused:
// it may say anything next, so the box takes no more steps (teardown
// still ends it, by what the session itself recorded).
func (x *executor) distrust(op xop, cause error) error {
	if x.b.dead == nil {
		x.b.dead = fmt.Errorf("box %s: its %s (host PID %d) answered %s with what the host does not confirm: %w; the box takes no more steps, `rm %s` tears it down",
			x.b.Name, x.role(), x.pid, op, cause, x.b.Name)
	}
	x.c.close()
	return x.b.dead
}
