package primitives

import (
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/probe"
)

// probeOlder is the probe the session runs itself, from the host: the
// box's processes started before a hardening step keep what they had.
const probeOlder = "older_processes"

// closesOlder is what closes an older process's hole.
const closesOlder = "end them (`exec kill PID`), or `rm` the box and build it again with every hardening step before its first command: caps, nnp, seccomp and unshare user reach only the commands started after them"

// olderProcesses compares each process of box b, as the host reads it in
// /proc, with what the box's next command gets (Box.Security): a process
// with more capabilities (any of the five sets), without no_new_privs or
// the box's seccomp filter where the next command has them, or in
// another user namespace, keeps the powers the hardening took from the
// box. Each thread is compared: all of these are a thread's own (ut34
// F11). After pivot_root a process that ran then and runs still may
// hold the host (HostHolds); after chroot one whose root is not the
// box's is outside it (ut34 F9). The box process and PID 1 are
// stepbox's executor: they never get the settings and are not counted,
// only named.
func (b *Box) olderProcesses() (ProbeResult, error) {
	r := ProbeResult{Result: probe.Result{Name: probeOlder}}
	procs, err := b.processes()
	if err != nil {
		return r, err
	}
	cmd := b.CommandPID()
	init, err := ReadProcSecurity(cmd)
	if err != nil {
		return r, err
	}
	next := nextCommand(init, b.Security())
	above := userNSAncestors(cmd)
	b.mu.Lock()
	seccompOlder := b.seccompOlder
	b.mu.Unlock()
	// After pivot_root a process may still hold the host's filesystem
	// (HostHolds): from inside, /proc/PID/cwd/.. leads to the host's /.
	holds := map[int]HostHolder{}
	hostHolds := ""
	f := b.FS()
	if f.Pivoted {
		list, nh, _, _, err := b.HostHolds()
		if err != nil {
			return r, err
		}
		for _, h := range list {
			holds[h.PID] = h
		}
		if nh > len(list) {
			hostHolds = fmt.Sprintf("; and %d more on the host's filesystem", nh-len(list))
		}
	}
	var boxRoot unix.Stat_t
	chrooted := f.Chrooted && unix.Stat(fmt.Sprintf("/proc/%d/root", cmd), &boxRoot) == nil
	var weak, own []string
	n, unseen := 0, false
	for _, p := range procs {
		h, held := holds[p.PID]
		if p.Role != "" && !held {
			own = append(own, fmt.Sprintf("%s (host PID %d)", p.Role, p.PID))
			continue
		}
		n++
		var why []string
		tids, cut := taskIDs(p.PID)
		if p.Role == "" {
			// The other threads that hold more than the main one are
			// named together where they hold the same.
			var keys []string
			threads := map[string][]int{}
			for _, tid := range tids {
				ts, err := readTaskSecurity(p.PID, tid)
				if err != nil {
					continue // ended meanwhile
				}
				unseen = unseen || next.Seccomp > 0 && ts.SeccompFilters < 0
				w := weaker(ts, next, userNS(p.PID), above, stillRuns(seccompOlder, p.PID))
				if tid == p.PID {
					why = w
					continue
				}
				w = slices.DeleteFunc(w, func(x string) bool { return slices.Contains(why, x) })
				if len(w) == 0 {
					continue
				}
				k := strings.Join(w, ", ")
				if threads[k] == nil {
					keys = append(keys, k)
				}
				threads[k] = append(threads[k], tid)
			}
			for _, k := range keys {
				why = append(why, threadsOf(threads[k])+": "+k)
			}
			if cut {
				why = append(why, fmt.Sprintf("(its first %d threads read)", holdTasks))
			}
		}
		if chrooted {
			for _, tid := range tids {
				var st unix.Stat_t
				if unix.Stat(fmt.Sprintf("/proc/%d/task/%d/root", p.PID, tid), &st) == nil && (st.Dev != boxRoot.Dev || st.Ino != boxRoot.Ino) {
					w := "root not the box's chroot"
					if tid != p.PID {
						w = fmt.Sprintf("thread %d's %s", tid, w)
					}
					if stillRuns(f.Older, p.PID) {
						w += ": it started before chroot, which changes the root of stepbox's executor only"
					}
					why = append(why, w)
					break
				}
			}
		}
		if held {
			why = append(why, hostHeld(h))
		}
		if len(why) > 0 {
			weak = append(weak, fmt.Sprintf("PID %d (host %d) %s: %s", p.BoxPID(), p.PID, printable(cmdOf(p), 40), strings.Join(why, ", ")))
		}
	}
	note := ""
	if len(own) > 0 {
		note = "; not counted, stepbox's executor: " + strings.Join(own, ", ") + " (PID 1 never gets the settings)"
	}
	if unseen {
		note += "; seccomp filter counts not compared: the kernel shows no Seccomp_filters (Linux 5.9), so a process with a filter of its own, started since the `seccomp` step by one that ran before it, passes for one with the box's"
	}
	if len(weak) == 0 {
		r.State, r.Via = probe.Closed, "procs"
		r.Evidence = fmt.Sprintf("none of the box's %d other processes holds more than its next command%s", n, note)
		return r, nil
	}
	r.State, r.Via, r.Closes = probe.Open, "procs", closesOlder
	r.Evidence = printable(fmt.Sprintf("the box's processes that hold more than its next command (%d): %s%s%s", len(weak), strings.Join(weak, "; "), hostHolds, note), 600)
	return r, nil
}

// threadsOf names threads tids, the first three of them.
func threadsOf(tids []int) string {
	var s []string
	for _, t := range tids[:min(len(tids), 3)] {
		s = append(s, fmt.Sprint(t))
	}
	out := "thread " + s[0]
	if len(tids) > 1 {
		out = "threads " + strings.Join(s, ", ")
	}
	if len(tids) > 3 {
		out += fmt.Sprintf(" and %d more", len(tids)-3)
	}
	return out
}

// hostHeld says where process h holds the host's filesystem, or that it
// may.
func hostHeld(h HostHolder) string {
	if h.N == 0 {
		return "started before pivot_root and still runs: what it keeps of the host (a mapped file, an fd in flight, a thread's own files) cannot all be seen from outside"
	}
	s := strings.Join(h.Holds, ", ")
	if h.N > len(h.Holds) {
		s += fmt.Sprintf(" and %d more", h.N-len(h.Holds))
	}
	return s + " on the host's filesystem, kept through pivot_root"
}

// processes are the box's processes as the host reads them: those of the
// session's tree that are the box's (its executor too, with its Role),
// children first, then those in the box's cgroup that are not in the
// tree (ones the session did not start through the box's executor).
func (b *Box) processes() ([]*ProcessNode, error) {
	tree, err := b.session.ProcessTree()
	if err != nil {
		return nil, fmt.Errorf("read the session's processes in /proc: %w", err)
	}
	var out []*ProcessNode
	seen := map[int]bool{}
	var walk func(p *ProcessNode)
	walk = func(p *ProcessNode) {
		for _, c := range p.Children {
			walk(c)
		}
		if p.Box != b.Name {
			return
		}
		seen[p.PID] = true
		out = append(out, p)
	}
	walk(tree)
	for _, pid := range b.cgroupProcs() {
		if seen[pid] || pid == b.PID() || pid == b.InitPID() {
			continue
		}
		if proc, err := procfs.NewProc(pid); err == nil {
			if stat, err := proc.Stat(); err == nil {
				out = append(out, ReadProcess(proc, stat))
			}
		}
	}
	return out, nil
}

// cgroupProcs are the processes in the box's cgroup, none before
// `cgroup new`.
func (b *Box) cgroupProcs() []int {
	g := b.Cgroup()
	if g == nil {
		return nil
	}
	h, err := b.session.Cgroups()
	if err != nil {
		return nil
	}
	pids, _ := h.Procs(g)
	return pids
}

// weaker says how p (one thread) holds more than next does:
// capabilities (any of the five sets), no_new_privs or the box's seccomp
// filter missing, a user namespace above the next command's (one of
// above; a namespace the process made below the box's is no more).
// beforeFilter: the process ran when the box's seccomp filter was set,
// so none of its filters is the box's, however many it has.
func weaker(p, next ProcSecurity, ns uint64, above map[uint64]bool, beforeFilter bool) []string {
	var why []string
	if p.CapEff&^next.CapEff != 0 {
		why = append(why, fmt.Sprintf("CapEff %016x, the next command's %016x", p.CapEff, next.CapEff))
	}
	for _, c := range []struct {
		name      string
		have, may uint64
	}{{"CapPrm", p.CapPrm, next.CapPrm}, {"CapBnd", p.CapBnd, next.CapBnd}, {"CapInh", p.CapInh, next.CapInh}, {"CapAmb", p.CapAmb, next.CapAmb}} {
		if c.have&^c.may != 0 {
			why = append(why, fmt.Sprintf("%s %016x", c.name, c.have))
		}
	}
	if next.NoNewPrivs && !p.NoNewPrivs {
		why = append(why, "NoNewPrivs 0")
	}
	switch {
	case next.Seccomp == 0:
	case p.Seccomp == 0:
		why = append(why, "Seccomp 0")
	case p.SeccompFilters >= 0 && next.SeccompFilters >= 0 && p.SeccompFilters < next.SeccompFilters:
		why = append(why, fmt.Sprintf("Seccomp_filters %d, the next command's %d", p.SeccompFilters, next.SeccompFilters))
	case beforeFilter:
		why = append(why, "seccomp filters of its own, not the box's (it started before the `seccomp` step)")
	}
	if above[ns] {
		why = append(why, fmt.Sprintf("user namespace user:[%d], above the box's", ns))
	}
	return why
}

// userNS is the inode of process pid's user namespace, 0 if unread.
func userNS(pid int) uint64 {
	var st unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &st) != nil {
		return 0
	}
	return st.Ino
}

// userNSAncestors are the user namespaces above process pid's, up to the
// host's (ioctl_ns(2), NS_GET_PARENT until the kernel refuses).
func userNSAncestors(pid int) map[uint64]bool {
	const nsGetParent = 0xb702 // _IO(0xb7, 2)
	above := map[uint64]bool{}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return above
	}
	for range 33 { // the kernel nests at most 32 user namespaces
		parent, err := unix.IoctlRetInt(fd, nsGetParent)
		unix.Close(fd)
		if err != nil {
			return above
		}
		fd = parent
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil {
			above[st.Ino] = true
		}
	}
	unix.Close(fd)
	return above
}

// cmdOf is a process's command line, or its name when it has none; the
// box controls both (printable cuts what a terminal would obey).
func cmdOf(p *ProcessNode) string {
	if p.Cmdline != "" {
		return p.Cmdline
	}
	return "[" + p.Comm + "]"
}
