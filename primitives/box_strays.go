package primitives

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

// Strays: a box that runs as host root can write its PID into any cgroup,
// and the cgroups a session is sure to find are its own: stepbox's parent
// cgroup (stepbox-<PID>) and, under it, each box's tracking and learner's
// cgroups (ut25 F2). cgroup.kill of the box's own cgroups misses a process
// that moved into the parent itself or into another box's cgroup. No
// process of stepbox's belongs in the parent directly, and a process in a
// box's cgroup belongs to that box only if it descends from the box's
// process or PID 1 (both child subreapers: every orphan of the box comes
// back to them) or carries its markers. What is neither is a stray. Before
// the box's processes end, `rm` reads, for each process in the session's
// cgroups outside the box's own, the kernel's facts: its ancestry, its
// markers, its namespaces, its start time. A stray is the box's, and is
// ended, when it descends from the box, carries its markers, is in a
// namespace of the box's own, or when no other box of the session could
// have started it (only a box with a command in the host's PID namespace
// can leave a process outside its own PID namespace). Any other stray is
// named, not ended: it may be another box's.

// stray is a process found in the session's cgroups outside the box's own.
type stray struct {
	pidStart
	where string // the cgroups it is in, by name
	box   string // the box whose cgroup that is; "" for stepbox's parent
	comm  string
	why   string // how it was told to be the box's
}

// otherBox is what the strays search needs of another box of the session.
type otherBox struct {
	name  string
	roots []pidStart // its box process and PID 1: its processes descend from them
	dirs  []string   // its cgroups' directories
	pidns nsID       // its PID 1's PID namespace; zero without one
	any   bool       // it may have started a process anywhere (host PID, or unknown)
}

// strays lists the processes in the session's cgroups (under parent) that
// are not where their box keeps them, split into those that are b's, to
// end, and those that may be another box's, to name. b.mu is held, and
// b's processes still run: their descendants are told by their ancestry,
// and pin holds b's namespaces.
func (b *Box) strays(parent *cgroups.Group, pin *nsPin) (mine, named []stray) {
	if parent == nil {
		return nil, nil
	}
	own := groupDirs(b.tracked, b.cgroup)
	others := b.session.otherBoxes(b)
	roots := []pidStart{{b.pid, b.start}, {b.initPID, b.initStart}}
	self := os.Getpid()
	at := map[int][]string{}   // each process's cgroup directories, one a hierarchy
	name := map[int][]string{} // and those cgroups' names, as /proc/PID/cgroup shows them
	for _, d := range append(slices.Clone(parent.Dirs), parent.Track...) {
		top := filepath.Clean(d.Path)
		for pid, where := range cgroupTreeProcs(top, own) {
			at[pid] = append(at[pid], where)
			if n := filepath.Join(d.Cgroup, strings.TrimPrefix(where, top)); !slices.Contains(name[pid], n) {
				name[pid] = append(name[pid], n)
			}
		}
	}
	for pid, places := range at {
		if pid == self {
			continue
		}
		p, err := procfs.NewProc(pid)
		if err != nil {
			continue
		}
		st, err := p.Stat()
		if err != nil || st.State == "Z" || st.Starttime < b.start {
			continue // gone, or older than the box: not its
		}
		slices.Sort(name[pid])
		s := stray{pidStart: pidStart{pid, st.Starttime}, where: strings.Join(name[pid], ", "), comm: commOf(pid)}
		var in *otherBox
		for i := range others {
			if slices.ContainsFunc(places, func(w string) bool { return dirsHold(others[i].dirs, w) }) {
				in, s.box = &others[i], others[i].name
			}
		}
		anc := ancestry(pid)
		sess, box, _ := markersOf(p)
		marked := sess == b.session.ID
		switch {
		case descends(anc, roots):
			s.why = "it descends from the box's process"
		case marked && box == b.Name:
			s.why = "it carries the box's markers"
		case inPinned(pid, pin):
			s.why = "it is in the box's namespaces"
		case pin.ns["user"] != nsID{} && userNSBelow(pid, pin.ns["user"]):
			s.why = "it is in a user namespace below the box's"
		}
		if s.why != "" {
			mine = append(mine, s)
			continue
		}
		fromSession := slices.ContainsFunc(anc, func(a pidStart) bool { return a.pid == self })
		if in != nil && (descends(anc, in.roots) || marked && box == in.name || fromSession) {
			continue // its own box's, where that box or the session put it
		}
		pidns, _ := nsOf(strconv.Itoa(pid), "pid")
		if !slices.ContainsFunc(others, func(o otherBox) bool { return o.any || o.pidns == pidns || marked && box == o.name }) {
			s.why = "no other box of the session could have started it"
			mine = append(mine, s)
			continue
		}
		named = append(named, s)
	}
	return mine, named
}

// parentCgroup is stepbox's parent cgroup if the session made one, else
// nil; it makes none.
func (s *Session) parentCgroup() *cgroups.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.parent
}

// otherBoxes is what the strays search needs of each box of the session
// but b. A box busy with a command (its lock held) is taken to have
// started processes anywhere.
func (s *Session) otherBoxes(b *Box) []otherBox {
	s.mu.Lock()
	var boxes []*Box
	for _, o := range s.boxes {
		if o != b {
			boxes = append(boxes, o)
		}
	}
	s.mu.Unlock()
	var out []otherBox
	for _, o := range boxes {
		ob := otherBox{name: o.Name, any: true}
		if o.mu.TryLock() {
			ob.roots = []pidStart{{o.pid, o.start}, {o.initPID, o.initStart}}
			ob.dirs = groupDirs(o.tracked, o.cgroup)
			ob.any = o.hostPID
			if o.initPID > 0 {
				ob.pidns, _ = nsOf(strconv.Itoa(o.initPID), "pid")
			}
			o.mu.Unlock()
		}
		out = append(out, ob)
	}
	return out
}

// endStrays ends b's strays and says what became of every stray: the
// ended ones, and the others still alive, named.
func endStrays(box string, mine, named []stray) (said []string, err error) {
	var ps []pidStart
	for _, s := range mine {
		ps = append(ps, s.pidStart)
	}
	left, err := killAndWaitLeft(ps)
	for _, s := range mine {
		if !slices.Contains(left, s.pidStart) { // said once it is so
			said = append(said, fmt.Sprintf("ended PID %d (%s) of box %s (%s): it had left the box's cgroups for %s (a box with the rights of host root can write its PID to any cgroup)", s.pid, s.comm, box, s.why, strayPlace(s)))
		}
	}
	for _, s := range named {
		if exitsWithin(s.pidStart, 0) {
			continue
		}
		said = append(said, fmt.Sprintf("left PID %d (%s) alone in %s: it is not where its box keeps its processes, and it may be box %s's or another box's of this session; if it is box %s's, end it by hand", s.pid, s.comm, strayPlace(s), box, box))
	}
	return said, err
}

func strayPlace(s stray) string {
	if s.box == "" {
		return "cgroup " + s.where + " (stepbox's own and no box's, where no process belongs)"
	}
	return "cgroup " + s.where + " (where box " + s.box + "'s processes are kept)"
}

// groupDirs lists the directories of the groups (nil ones skipped).
func groupDirs(gs ...*cgroups.Group) []string {
	var out []string
	for _, g := range gs {
		if g == nil {
			continue
		}
		for _, d := range append(slices.Clone(g.Dirs), g.Track...) {
			out = append(out, filepath.Clean(d.Path))
		}
	}
	return out
}

// dirsHold says whether dir is one of dirs or below one.
func dirsHold(dirs []string, dir string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return dir == d || strings.HasPrefix(dir, d+"/") })
}

// cgroupTreeProcs reads cgroup.procs of top and of every cgroup below it
// but those in skip: each PID and the cgroup it is in.
func cgroupTreeProcs(top string, skip []string) map[int]string {
	out := map[int]string{}
	filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if dirsHold(skip, path) {
			return filepath.SkipDir
		}
		raw, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(raw)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				out[pid] = path
			}
		}
		return nil
	})
	return out
}

// ancestry is a process's parents, nearest first, with their start times,
// up to the host's init (or a parent already gone).
func ancestry(pid int) []pidStart {
	var out []pidStart
	for hop := 0; hop < 64; hop++ {
		p, err := procfs.NewProc(pid)
		if err != nil {
			return out
		}
		st, err := p.Stat()
		if err != nil || st.PPID <= 1 {
			return out
		}
		pid = st.PPID
		start, err := startTime(pid)
		if err != nil {
			return out
		}
		out = append(out, pidStart{pid, start})
	}
	return out
}

// descends says whether one of the ancestors anc is one of roots.
func descends(anc, roots []pidStart) bool {
	return slices.ContainsFunc(anc, func(a pidStart) bool { return a.pid > 0 && slices.Contains(roots, a) })
}

// inPinned says whether process pid is in one of the pinned namespaces.
func inPinned(pid int, pin *nsPin) bool {
	for t, id := range pin.ns {
		if got, err := nsOf(strconv.Itoa(pid), t); err == nil && got == id {
			return true
		}
	}
	return false
}

// CouldEscape says whether a process of the box could have left every
// place teardown looks: a command of it started in the host's PID
// namespace (it does not die with the box's PID 1) with the rights of host
// root (no user namespace of the box's own), which may write its PID to a
// cgroup outside stepbox's and clear its markers. `rm` says so rather
// than claim every process ended.
//
// It takes no lock: the end of a session asks it while a command of the
// box may still run, holding b.mu until the teardown ends it.
func (b *Box) CouldEscape() bool { return b.escapable.Load() }

// noteEscape sets what CouldEscape says from b's state; b.mu is held.
func (b *Box) noteEscape() { b.escapable.Store(b.hostPID && !b.unshared["user"]) }
