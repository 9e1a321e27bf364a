package primitives

import (
	"strconv"
	"strings"

	"stepbox/primitives/cgroups"
)

// thaw thaws every freeze that holds a process of the box, before its
// teardown signals them and again after: a process of the box may have
// frozen its cgroup (v1 freezer.state, cgroup2 cgroup.freeze), one below
// it, stepbox's parent, or one it moved itself into, and a task the v1
// freezer holds does not act on SIGKILL, nor does a PID 1 waiting for it
// in the kernel exit (ut27 F2; cgroups/freeze.go). b.mu is held.
func (b *Box) thaw() error {
	_, err := cgroups.Thaw([]int{b.pid, b.initPID}, b.tracked, b.cgroup)
	return err
}

// pidNames names processes teardown could not end: each PID, its command,
// and the cgroup that holds it frozen, if one does (one outside stepbox's
// cgroups, which teardown leaves as it is).
func pidNames(pids []int) string {
	var names []string
	for _, pid := range pids {
		n := strconv.Itoa(pid) + " (" + commOf(pid)
		if f := cgroups.Frozen(pid); f != "" {
			n += ", frozen: " + f
		}
		names = append(names, n+")")
	}
	return strings.Join(names, ", ")
}
