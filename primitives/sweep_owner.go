package primitives

import (
	"fmt"
	"strconv"

	"github.com/prometheus/procfs"
)

// A parent cgroup is named stepbox-<PID> for the session that made it,
// by its PID in the session's own PID namespace. The cgroup tree is the
// machine's, but PIDs are not: a stepbox running in a container (its
// own PID namespace, the host's cgroup tree, as `make test-container`
// runs the tests) names its tree by a PID that means another process, or
// none, here. The sweep removes a tree only when its session is surely
// gone.

// initPIDNSInode is the inode of the host's (the initial) PID namespace,
// fixed by the kernel (PROC_PID_INIT_INO, include/linux/proc_ns.h).
const initPIDNSInode = 0xEFFFFFFC

// sessionMayLive says whether the session that named a parent cgroup
// stepbox-<pid> may still run, and why, where the PID alone does not say.
//
// A process with that PID here: kept (alive, or a reused PID: kept
// rather than risk a live session's tree). None, in a PID namespace
// other than the host's: the session may live in an ancestor or sibling
// namespace this one cannot see, so kept. None, in the host's: every
// process on the machine is visible from here, so a live session in any
// namespace is a process whose NSpid (proc(5)) holds that PID.
func sessionMayLive(pid int) (bool, string) {
	if pidAlive(pid) {
		return true, ""
	}
	if ownPIDNS != strconv.FormatUint(initPIDNSInode, 10) {
		return true, fmt.Sprintf("no PID %d here, but this stepbox runs in a PID namespace of its own (%s), and a session in another one may have made it; the host's `stepbox cleanup` can tell", pid, ownPIDNS)
	}
	if host := nestedPID(pid); host != 0 {
		return true, fmt.Sprintf("host PID %d is PID %d in a PID namespace of its own: a stepbox session in a container may have made it", host, pid)
	}
	return false, ""
}

// nestedPID returns the host PID of a process that is PID pid in a PID
// namespace below the host's, or 0.
func nestedPID(pid int) int {
	procs, err := procfs.AllProcs()
	if err != nil {
		return 0
	}
	for _, p := range procs {
		st, err := p.NewStatus()
		if err != nil {
			continue
		}
		for _, n := range st.NSpids[min(1, len(st.NSpids)):] {
			if int(n) == pid {
				return p.PID
			}
		}
	}
	return 0
}
