package primitives

import (
	"fmt"
	"strconv"
	"strings"

	"stepbox/primitives/cgroups"
)

// thaw thaws every freeze that holds a process of the box, once its
// teardown has signalled them: a process of the box may have
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

// frozen says what holds the executor x, or the command cmd of its wait,
// frozen: the file that says so and which process it holds ("" if none).
func (x *executor) frozen(cmd []int) (frozen, who string) {
	if f := cgroups.Frozen(x.pid); f != "" {
		return f, fmt.Sprintf("its %s (host PID %d)", x.role(), x.pid)
	}
	for _, pid := range cmd {
		if pid <= 0 {
			continue
		}
		if f := cgroups.Frozen(pid); f != "" {
			return f, fmt.Sprintf("its command (host PID %d)", pid)
		}
	}
	return "", ""
}

// frozenMsg is BoxSilentError's text for a wait given up on a frozen
// process: what froze it, and that `rm` still ends the box.
func (e *BoxSilentError) frozenMsg() string {
	return fmt.Sprintf("box %s: did not answer %s: %s is frozen (%s), and stayed so for %s. "+
		"A frozen process runs nothing, not even its end by SIGKILL, until its cgroup is thawed: `cgroup set freezer.state FROZEN` (cgroup.freeze 1 on v2) does that, "+
		"and so can a process of the box that sees its cgroup's freezer (a box whose cgroup namespace was made before `cgroup attach` sees the host's v1 tree). "+
		"The box takes no more steps; `rm %s` thaws its cgroups and ends everything in it",
		e.Box, e.Op, e.FrozenWho, e.Frozen, e.After, e.Box)
}
