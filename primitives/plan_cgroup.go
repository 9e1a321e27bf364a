package primitives

import (
	"fmt"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
)

// PlanCgroupNew is the record `cgroup new` will write: the session's
// parent cgroup too, the first time. It is cgroupNew's own code, run
// against the stand-in (cgroups.Planning).
func (b *Box) PlanCgroupNew() (*step.Step, error) { return b.cgroupNew(true) }

// planCgroup is the box's cgroup with the kernel replaced by a stand-in
// that writes nothing (cgroups.Planning).
func (b *Box) planCgroup() (cgroups.Hierarchy, *cgroups.Group, error) {
	h, g, err := b.needCgroup()
	if err != nil {
		return nil, nil, fmt.Errorf("%w; `explain cgroup new` shows what making it does", err)
	}
	return cgroups.Planning(h), g, nil
}

// PlanCgroupSet is the record `cgroup set FILE VALUE` will write: Set's
// own code, run against the stand-in.
func (b *Box) PlanCgroupSet(file, value string) (*step.Step, error) {
	h, g, err := b.planCgroup()
	if err != nil {
		return nil, err
	}
	st, err := h.Set(g, file, value)
	st.MarkNotRun()
	return st, err
}

// PlanCgroupLimit is the record `cgroup limit KIND VALUE` will write.
func (b *Box) PlanCgroupLimit(kind, value string) (*step.Step, error) {
	h, g, err := b.planCgroup()
	if err != nil {
		return nil, err
	}
	_, st, err := h.Limit(g, kind, value)
	st.MarkNotRun()
	return st, err
}

// PlanCgroupAttach is the record `cgroup attach` will write.
func (b *Box) PlanCgroupAttach() (*step.Step, error) {
	h, g, err := b.planCgroup()
	if err != nil {
		return nil, err
	}
	st, err := h.Attach(g, b.attachPIDs()...)
	st.MarkNotRun()
	return st, err
}

// attachPIDs are the processes `cgroup attach` moves: the box's PID 1
// (or, without one, the box process) and every container process of the
// box already running. A box process with a PID 1 stays outside: it only
// waits, and its threads would count against pids.max. The running ones
// are those in the box's tracking cgroup, where every process of the box
// starts (box_track.go, enter.go), one read; where the box has none, or
// started a command in the host's PID namespace (which may have left it,
// box_pidns.go), those carrying the box's markers, a read of every
// process's environment.
func (b *Box) attachPIDs() []int {
	var pids []int
	seen := map[int]bool{}
	add := func(pid int) {
		if pid > 0 && !seen[pid] {
			seen[pid] = true
			pids = append(pids, pid)
		}
	}
	if b.InitPID() != 0 {
		add(b.InitPID())
	} else {
		add(b.PID())
	}
	for _, pid := range b.runningPIDs() {
		if pid != b.PID() {
			add(pid)
		}
	}
	return pids
}

// runningPIDs lists the box's processes for attachPIDs.
func (b *Box) runningPIDs() []int {
	b.mu.Lock()
	tracked, hostPID := b.tracked, b.hostPID
	b.mu.Unlock()
	if tracked != nil && !hostPID {
		if pids, err := cgroups.Members(tracked); err == nil {
			return pids
		}
	}
	var pids []int
	for _, p := range markedProcesses(b.session.ID, b.Name) {
		pids = append(pids, p.pid)
	}
	return pids
}
