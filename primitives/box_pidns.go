package primitives

import (
	"encoding/json"
	"os"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
)

// When `rm` searches /proc for a box's processes, and when the kernel has
// ended them already.
//
// When the init of a PID namespace exits, the kernel sends SIGKILL to
// every process in the namespace and in the namespaces below it, and the
// init is not reported as exited (its pidfd does not read as such) until
// all of them are gone (pid_namespaces(7); zap_pid_ns_processes() in
// kernel/pid_namespace.c: "when the init process of a pid namespace is
// reaped all of the processes in the pid namespace are gone"). None can
// leave: setns(2) to a PID namespace moves only the caller's children, and
// only into its own namespace or one below it. So a box whose commands all
// started in its own PID namespace has no process left once its PID 1 has
// exited and the session has reaped its box process (the session's child,
// which forks nothing but PID 1 and commands): `rm` then reads no other
// process's environment or namespaces. A command that started in the
// host's PID namespace (before `unshare pid`, or `enter` without the box's
// PID namespace) does not die with PID 1 and may have left stepbox's
// tracking cgroup and cleared its markers (a box with the rights of host
// root can do both): the ledger says so (ResHostPID) before it starts, and
// `rm` searches as it always did. So do the sweep and `stepbox cleanup`,
// which know nothing live.

// hostPIDCommand writes to the ledger, once and before the command starts,
// that box b starts a command in the host's PID namespace. b.mu is held.
func (b *Box) hostPIDCommand() error {
	if b.hostPID {
		return nil
	}
	if err := b.ledger.Add(Resource{Kind: ResHostPID, Note: "a command started in the host's PID namespace: it does not die with the box's PID 1, so teardown searches every process for it"}); err != nil {
		return err
	}
	b.hostPID = true
	b.noteEscape()
	b.session.hostPID.Store(true)
	return nil
}

// liveBox is what a session tearing a box down knows that a ledger read
// after a crash does not.
type liveBox struct {
	pin    *nsPin   // the box's namespaces, held open while they are searched; nil: not taken
	box    pidStart // its box process
	init   pidStart // its PID 1; zero without one
	reaped bool     // its box process was reaped by the session
	groups []string // its cgroups (tracking, learner's) as the session made them, in JSON
	upper  *os.File // its upper tmpfs, held open since `new` (unmountHeld); nil: none
}

// liveBox is what the session knows of b as teardown starts. b.mu is held.
func (b *Box) liveBox() *liveBox {
	l := &liveBox{box: pidStart{b.pid, b.start}, init: pidStart{b.initPID, b.initStart}, upper: b.upperRoot}
	b.upperRoot = nil
	for _, g := range []*cgroups.Group{b.tracked, b.cgroup} {
		if raw, err := json.Marshal(g); g != nil && err == nil {
			l.groups = append(l.groups, string(raw))
		}
	}
	return l
}

// made says whether a ledger line's cgroup is, byte for byte, one the
// live session made for the box: it needs no check that it is the
// session's (ledgerCgroupOwn is for a ledger read after a crash).
func (l *liveBox) made(group json.RawMessage) bool {
	return l != nil && len(group) > 0 && slices.Contains(l.groups, string(group))
}

// sawEnd says whether p is the box process or PID 1, both seen to end by
// the time searchNeeded says there is nothing to search.
func (l *liveBox) sawEnd(p pidStart) bool {
	return l != nil && p.pid > 0 && (p == l.box && l.reaped || p == l.init)
}

// searchNeeded says whether teardown must look for processes of the box
// in its cgroups and across /proc: always after a crash (l nil), and for
// a live box unless every process it started was in its own PID
// namespace and its PID 1, sent SIGKILL (killInit), has exited (the
// package comment); it waits for that as killAndWait does. res is the
// box's ledger.
func (l *liveBox) searchNeeded(res []Resource) bool {
	return !l.endsWithInit(res) || l.init.pid != 0 && !exitsWithin(l.init, 10*time.Second)
}

// endsWithInit says whether every process of the box ends with its PID 1
// (or, without one, with its box process): the session reaped the box
// process, and the ledger records no command started in the host's PID
// namespace. searchNeeded then waits only for PID 1 to exit.
func (l *liveBox) endsWithInit(res []Resource) bool {
	if l == nil || !l.reaped {
		return false
	}
	for _, r := range res {
		if r.Kind == ResHostPID {
			return false
		}
	}
	return true
}

// pinned is the pin teardown searches with: the one taken before the box's
// processes ended, or, where none was (no search was expected), one taken
// now from those of PID 1 and the box process that are still alive and
// still the box's: what survived SIGKILL holds the namespaces it is in.
// nil when there is neither.
func (l *liveBox) pinned() *nsPin {
	if l == nil {
		return nil
	}
	if l.pin == nil {
		l.pin = pinAlive(l.init, l.box)
	}
	return l.pin
}

// pinAlive pins the namespaces of those of procs that are still the
// processes recorded, checked once their namespaces are open: a PID reused
// meanwhile would have handed the pin another process's. nil: none was.
func pinAlive(procs ...pidStart) *nsPin {
	var pin *nsPin
	for _, p := range procs {
		if p.pid <= 0 || exitsWithin(p, 0) {
			continue
		}
		one := pinNamespaces(p.pid)
		if st, err := startTime(p.pid); err != nil || st != p.start {
			one.release()
			continue
		}
		if pin == nil {
			pin = one
			continue
		}
		for t, id := range one.ns {
			if _, ok := pin.ns[t]; !ok { // PID 1's first: later steps unshare there
				pin.ns[t] = id
			}
		}
		pin.fds = append(pin.fds, one.fds...)
	}
	return pin
}

// killInit sends SIGKILL to the box's PID 1 through a pidfd, if it is still
// the process recorded: the kernel tears its namespaces down while the
// session reaps the box process.
func killInit(p pidStart) {
	if p.pid <= 1 {
		return
	}
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if st, err := startTime(p.pid); err == nil && st == p.start {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// exitsWithin reports whether p has exited, or exits within d: no such
// process, its PID another process's now, or its pidfd readable (a
// zombie; pidfd_open(2)).
func exitsWithin(p pidStart, d time.Duration) bool {
	fd, err := unix.PidfdOpen(p.pid, 0)
	if err != nil {
		return true
	}
	defer unix.Close(fd)
	if st, err := startTime(p.pid); err != nil || st != p.start {
		return true
	}
	deadline := time.Now().Add(d)
	for {
		ms := max(0, int(time.Until(deadline)/time.Millisecond))
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, ms)
		switch {
		case n > 0:
			return true
		case err == unix.EINTR:
		case err != nil || ms == 0:
			return false
		}
	}
}

// release ends the pin, if any.
func (l *liveBox) release() {
	if l != nil {
		l.pin.release()
	}
}

// heldUpper is the upper tmpfs the live box holds open, for its ResMount
// line at path; nil after a crash.
func (l *liveBox) heldUpper(path string) *os.File {
	if l == nil || l.upper == nil || l.upper.Name() != path {
		return nil
	}
	return l.upper
}

// closeUpper lets the unmounted tmpfs go.
func (l *liveBox) closeUpper() {
	if l != nil && l.upper != nil {
		l.upper.Close()
		l.upper = nil
	}
}
