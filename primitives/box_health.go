package primitives

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// died records that the box's process is gone, so every later step says
// so plainly instead of failing on a closed socket.
func (b *Box) died(cause error) error {
	if b.dead == nil && shortOf(cause) {
		// The session ran out of something (descriptors, memory), not the
		// box out of processes: say so, and look again next time.
		return fmt.Errorf("box %s: the session is short of resources, the box may still run: %w", b.Name, cause)
	}
	if b.dead == nil {
		who := "its box process"
		for _, p := range []struct {
			pid  int
			role string
		}{{b.initPID, "its PID 1"}, {b.pid, "its box process"}} {
			if st, err := procState(p.pid); p.pid != 0 && ((err != nil && procGone(err)) || st == "Z") {
				who = fmt.Sprintf("%s (host PID %d)", p.role, p.pid)
				break
			}
		}
		b.dead = &BoxGoneError{Box: b.Name, Who: who, Cause: cause}
	}
	return b.dead
}

// BoxGoneError says that a box's process ended under the session.
type BoxGoneError struct {
	Box   string
	Who   string // which process: "its PID 1 (host PID 4242)"
	Cause error
}

func (e *BoxGoneError) Error() string {
	return fmt.Sprintf("box %s is gone: %s has exited, and its namespaces and mounts with it; `rm %s` cleans up what is left", e.Box, e.Who, e.Box)
}

func (e *BoxGoneError) Unwrap() error { return e.Cause }

// Notice checks every box and returns the ones whose processes have ended
// since the last look, so the shell can say so before the learner tries
// the next step.
func (s *Session) Notice() []error {
	var out []error
	for _, b := range s.Boxes() {
		if b == nil {
			continue
		}
		b.mu.Lock()
		already := b.dead != nil
		b.mu.Unlock()
		if already {
			continue
		}
		if err := b.Alive(); err != nil {
			out = append(out, err)
		}
	}
	return out
}

// Alive reports nil while the box's processes run, or why not.
func (b *Box) Alive() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dead != nil {
		return b.dead
	}
	for _, pid := range []int{b.pid, b.initPID} {
		if pid == 0 {
			continue
		}
		if pid == b.pid {
			// Peek only (WNOWAIT): teardown reaps the box process through
			// os.Process.Wait, which also closes Go's pidfd for it.
			var info unix.Siginfo
			err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
			// With WNOHANG the kernel zeroes the result unless the child
			// has changed state (waitid(2)).
			if err == nil && info.Signo == int32(unix.SIGCHLD) {
				return b.died(fmt.Errorf("PID %d has exited", pid))
			}
		}
		st, err := procState(pid)
		if err != nil && !procGone(err) {
			// EMFILE, ENOMEM: the session cannot look, which says nothing
			// about the box.
			return fmt.Errorf("box %s: read /proc/%d/stat: %w", b.Name, pid, err)
		}
		if err != nil || st == "Z" {
			return b.died(fmt.Errorf("PID %d is gone", pid))
		}
	}
	return nil
}

// procGone reports whether err, from reading /proc/PID, means the
// process is gone, rather than that the reader could not look.
func procGone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ESRCH)
}

// shortOf reports whether err is the session running out of a resource
// of its own: descriptors, memory, buffers.
func shortOf(err error) bool {
	for _, e := range []error{unix.EMFILE, unix.ENFILE, unix.ENOMEM, unix.ENOBUFS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
