package primitives

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// died records that the box's process is gone, so every later step says
// so plainly instead of failing on a closed socket.
func (b *Box) died(cause error) error {
	if b.dead == nil {
		who := "its box process"
		for _, p := range []struct {
			pid  int
			role string
		}{{b.initPID, "its PID 1"}, {b.pid, "its box process"}} {
			if st, err := procState(p.pid); p.pid != 0 && (err != nil || st == "Z") {
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
		var ws unix.WaitStatus
		if pid == b.pid {
			if wp, _ := unix.Wait4(pid, &ws, unix.WNOHANG, nil); wp == pid {
				return b.died(fmt.Errorf("PID %d: %s", pid, describeWait(ws)))
			}
		}
		if st, err := procState(pid); err != nil || st == "Z" {
			return b.died(fmt.Errorf("PID %d is gone", pid))
		}
	}
	return nil
}

func describeWait(ws unix.WaitStatus) string {
	if ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exit status %d", ws.ExitStatus())
}
