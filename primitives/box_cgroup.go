package primitives

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
)

// CgroupParentOverride is --cgroup-parent: where stepbox's parent cgroup goes.
var CgroupParentOverride string

// CheckCgroupParent checks --cgroup-parent at start-up, before any box:
// stepbox makes its own cgroup under PATH and never makes PATH itself,
// so a PATH missing from a hierarchy would leave every box untracked and
// without the session's task cap, said only by `cgroup new` (ut32 F5).
func CheckCgroupParent() error {
	if CgroupParentOverride == "" {
		return nil
	}
	const allowed = "name a cgroup that exists in every hierarchy stepbox uses, a directory (not a control file such as cgroup.procs), and holds no processes (cgroup v2), as /proc/PID/cgroup shows it; stepbox makes its own cgroup under it and does not create it"
	h, err := hostCgroups()
	if err != nil {
		return fmt.Errorf("--cgroup-parent %q: the host's cgroups cannot be read (%w): %s", CgroupParentOverride, err, allowed)
	}
	if _, err := h.Place(CgroupParentOverride); err != nil {
		return fmt.Errorf("%w: %s", err, allowed)
	}
	return nil
}

// Cgroups opens the host's cgroup hierarchy once: v2, v1 or hybrid, as
// the host runs it.
func (s *Session) Cgroups() (cgroups.Hierarchy, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hier == nil {
		fs, err := procfs.NewFS(procfs.DefaultMountPoint)
		if err != nil {
			return nil, err
		}
		h, err := cgroups.Open(cgroups.DefaultRoot, fs, os.Getpid())
		if err != nil {
			return nil, err
		}
		s.hier = h
	}
	return s.hier, nil
}

// cgroupParent makes the session's own parent cgroup on first use,
// recording it in the session's ledger first.
func (s *Session) cgroupParent(st *step.Step) (*cgroups.Group, error) {
	h, err := s.Cgroups()
	if err != nil {
		return nil, err
	}
	return s.parentIn(st, h, false)
}

// parentIn is cgroupParent on h; plan: h is cgroups.Planning's, and the
// parent it makes is only planned, so neither the ledger nor the session
// keeps it.
func (s *Session) parentIn(st *step.Step, h cgroups.Hierarchy, plan bool) (*cgroups.Group, error) {
	if s.closing.Load() {
		return nil, errClosing
	}
	s.mu.Lock()
	parent := s.parent
	s.mu.Unlock()
	if parent != nil {
		return parent, nil
	}
	if plan {
		g, pst, err := h.NewParent(CgroupParentOverride)
		st.Merge(pst)
		return g, err
	}
	place, err := h.Place(CgroupParentOverride)
	if err != nil {
		return nil, err
	}
	l, err := openLedger(s.Dir)
	if err != nil {
		return nil, err
	}
	name := cgroups.ParentName(s.ID)
	planned := cgroups.Group{Name: name, Scope: place.Scope}
	for _, d := range place.Dirs {
		d.Path, d.Cgroup = path.Join(d.Path, name), path.Join(d.Cgroup, name)
		planned.Dirs = append(planned.Dirs, d)
	}
	for _, d := range place.Track {
		d.Path, d.Cgroup = path.Join(d.Path, name), path.Join(d.Cgroup, name)
		planned.Track = append(planned.Track, d)
	}
	raw, _ := json.Marshal(planned)
	if err := l.Add(Resource{Kind: ResCgroup, Group: raw, Note: "the session's parent cgroup (" + place.Rule + ")"}); err != nil {
		return nil, err
	}
	g, pst, err := h.NewParent(CgroupParentOverride)
	st.Merge(pst)
	if err != nil {
		return nil, err
	}
	// The real group knows which controllers it enabled on the way down:
	// record it again so teardown undoes exactly that.
	raw, _ = json.Marshal(g)
	l.Add(Resource{Kind: ResCgroup, Group: raw, Note: "the session's parent cgroup"})
	s.mu.Lock()
	s.parent = g
	s.mu.Unlock()
	return g, nil
}

// shownParent is the parent cgroup once a box has a cgroup of the
// learner's, else nil: until `cgroup new`, the boxes have none to show.
func (s *Session) shownParent() *cgroups.Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shown {
		return nil
	}
	return s.parent
}

// ledgerGroup reads the cgroup of a ResCgroup ledger line of session's,
// once it is shown to be the session's (never a cgroup stepbox did not
// make: each is the session's stepbox-PID parent or a cgroup under it);
// nil for a line without one.
func ledgerGroup(r Resource, session string) (g *cgroups.Group, dropped []string, err error) {
	if len(r.Group) == 0 {
		return nil, nil, nil
	}
	g = &cgroups.Group{}
	if err := json.Unmarshal(r.Group, g); err != nil {
		return nil, nil, fmt.Errorf("ledger: cgroup: %w", err)
	}
	dropped = dropNowhere(g)
	return g, dropped, ledgerCgroupOwn(*g, session)
}

// dropNowhere takes out of g, and returns, its directories where no
// cgroup can be: one whose parent is a file (ENOTDIR), as a
// --cgroup-parent naming a control file (/cgroup.procs) made them before
// start-up refused it. Kept, they failed every teardown and cleanup, and
// the ledger with them, for ever (ut33 F5). A directory that is there,
// or could be, stays for teardown to remove.
func dropNowhere(g *cgroups.Group) []string {
	var dropped []string
	keep := func(ds []cgroups.Dir) []cgroups.Dir {
		return slices.DeleteFunc(ds, func(d cgroups.Dir) bool {
			_, err := os.Lstat(filepath.Clean(d.Path))
			if errors.Is(err, syscall.ENOTDIR) {
				dropped = append(dropped, d.Path)
				return true
			}
			return false
		})
	}
	g.Dirs, g.Track = keep(g.Dirs), keep(g.Track)
	return dropped
}

// droppedNote says the directories dropNowhere dropped: a note, as a
// refused line is (refusalsOf), that does not keep the ledger.
func droppedNote(dropped []string) error {
	if len(dropped) == 0 {
		return nil
	}
	quoted := make([]string, len(dropped))
	for i, d := range dropped {
		quoted[i] = strconv.Quote(d) // the ledger's: a box may have written it
	}
	return refusal("ledger: dropped cgroup %s: a file, not a directory, is on the way there, so no cgroup can be there and none is to remove", strings.Join(quoted, ", "))
}

// removeCgroup undoes a ResCgroup ledger line of session's; made: the
// live session made the group the line names (liveBox.made), so it is
// not checked again.
func removeCgroup(r Resource, session string, made bool) error {
	var g *cgroups.Group
	var dropped []string
	var err error
	if made {
		g = &cgroups.Group{}
		if err = json.Unmarshal(r.Group, g); err == nil {
			dropped = dropNowhere(g)
		}
	} else {
		g, dropped, err = ledgerGroup(r, session)
	}
	if g == nil || err != nil {
		return errors.Join(err, droppedNote(dropped))
	}
	if g.Scope == "" {
		_, err = cgroups.RemoveGroup(g)
		return errors.Join(err, droppedNote(dropped))
	}
	live := false
	for _, d := range append(slices.Clone(g.Dirs), g.Track...) {
		if _, err := os.Stat(d.Path); err == nil {
			live = true
		}
	}
	if !live && len(g.Enabled) == 0 {
		return droppedNote(dropped)
	}
	fs, err := procfs.NewFS(procfs.DefaultMountPoint)
	if err != nil {
		return err
	}
	h, err := cgroups.Open(cgroups.DefaultRoot, fs, os.Getpid())
	if err != nil {
		return err
	}
	_, err = h.Remove(g)
	return errors.Join(err, droppedNote(dropped))
}

// Cgroup returns the box's cgroup, or nil before `cgroup new`.
func (b *Box) Cgroup() *cgroups.Group {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cgroup
}

// CgroupNew makes the box's cgroup under the session's parent, named after
// the box and a short id, like a container's.
func (b *Box) CgroupNew() (*step.Step, error) { return b.cgroupNew(false) }

// cgroupNew is `cgroup new`, run or (plan) planned: the plan is the same
// code against cgroups.Planning's stand-in for the kernel, one for the
// parent and the box's cgroup, so the box's is planned under the parent
// as planned.
func (b *Box) cgroupNew(plan bool) (*step.Step, error) {
	if g := b.Cgroup(); g != nil {
		return nil, fmt.Errorf("box %s has a cgroup already: %s", b.Name, g.Name)
	}
	h, err := b.session.Cgroups()
	if err != nil {
		return nil, err
	}
	st := &step.Step{Command: "cgroup new"}
	if plan {
		h = cgroups.Planning(h)
		defer st.MarkNotRun()
	}
	parent, err := b.session.parentIn(st, h, plan)
	if err != nil {
		return st, err
	}
	g, cst, err := h.Create(parent, b.Name, b.ID)
	st.Merge(cst)
	if err != nil {
		return st, err
	}
	if !plan {
		raw, _ := json.Marshal(g)
		// Written right after the mkdir: the random name is chosen inside
		// Create. A crash in between is caught by the sweep, which removes
		// every cgroup under a dead session's parent.
		if err := b.ledger.Add(Resource{Kind: ResCgroup, Group: raw, Note: "the box's cgroup"}); err != nil {
			h.Remove(g)
			return st, err
		}
		b.mu.Lock()
		b.cgroup = g
		b.mu.Unlock()
		b.session.mu.Lock()
		b.session.shown = true
		b.session.mu.Unlock()
	}
	st.Tell(fmt.Sprintf("made cgroup %s for box %s under stepbox's parent %s", g.Name, b.Name, parent.Name),
		fmt.Sprintf("will make cgroup %s for box %s under stepbox's parent %s", g.Name, b.Name, parent.Name))
	return st, nil
}

func (b *Box) needCgroup() (cgroups.Hierarchy, *cgroups.Group, error) {
	g := b.Cgroup()
	if g == nil {
		return nil, nil, cgroups.ErrNoGroup
	}
	h, err := b.session.Cgroups()
	return h, g, err
}

// CgroupSet writes value to a control file of the box's cgroup.
func (b *Box) CgroupSet(file, value string) (*step.Step, error) {
	h, g, err := b.needCgroup()
	if err != nil {
		return nil, err
	}
	switch file {
	case "cgroup.procs", "tasks", "cgroup.threads":
		// Moving a host process into a box's cgroup would put it under
		// the box's limits, and keep the cgroup from being removed.
		pid, err := ParsePID(value)
		if err == nil {
			err = b.ownsPID(pid)
		}
		if err != nil {
			return nil, fmt.Errorf("cgroup set %s %s: %w", file, step.Cut(value), err)
		}
		// What was checked is what the kernel reads.
		value = strconv.Itoa(pid)
	}
	return h.Set(g, file, value)
}

// ParsePID reads a PID as plain decimal, and refuses every other form.
// The kernel reads cgroup.procs with kstrtoint(buf, 0) (base 0: "017" is
// octal 15, "0x11" is 17, and 0 means the writer itself;
// kernel/cgroup/cgroup.c, __cgroup_procs_write), so a form Go would read
// otherwise could pass a check on one PID and move another.
func ParsePID(value string) (int, error) {
	v := strings.Trim(value, " \t\n")
	ok := v != "" && len(v) <= 7 && v[0] != '0' // PID_MAX_LIMIT is 4194304: 7 digits
	for i := 0; ok && i < len(v); i++ {
		ok = v[i] >= '0' && v[i] <= '9'
	}
	if !ok {
		return 0, fmt.Errorf("%q is not a PID: write a host PID in plain decimal, 1 to 4194304, no sign or leading zero (`ps` shows the box's)", step.Cut(value))
	}
	pid, _ := strconv.Atoi(v)
	return pid, nil
}

// ownsPID checks that pid is the host PID of one of the box's processes.
func (b *Box) ownsPID(pid int) error {
	if pid == b.PID() || pid == b.InitPID() {
		return nil
	}
	for _, p := range markedProcesses(b.session.ID, b.Name) {
		if p.pid == pid {
			return nil
		}
	}
	return fmt.Errorf("PID %d is not a process of box %s: only the box's own processes may join its cgroup (`ps` shows them)", pid, b.Name)
}

// CgroupLimit sets a memory, pids or cpu limit, translated for the host's
// cgroup version; it returns the files written.
func (b *Box) CgroupLimit(kind, value string) ([]cgroups.Setting, *step.Step, error) {
	h, g, err := b.needCgroup()
	if err != nil {
		return nil, nil, err
	}
	return h.Limit(g, kind, value)
}

// CgroupAttach moves the box's processes into its cgroup: its PID 1 (or,
// without one, the box process, which then starts every command) and any
// container process already running. New container processes start
// inside, because children inherit their parent's cgroup. A box process
// with a PID 1 stays outside: it only waits, and its threads would count
// against pids.max.
func (b *Box) CgroupAttach() ([]int, *step.Step, error) {
	h, g, err := b.needCgroup()
	if err != nil {
		return nil, nil, err
	}
	pids := b.attachPIDs()
	st, err := h.Attach(g, pids...)
	return pids, st, err
}

// CgroupSnapshot reads stepbox's cgroup tree with live usage and where
// the box sits, as the host sees it and as the box itself does.
func (b *Box) CgroupSnapshot(prev *cgroups.Snapshot) (cgroups.Snapshot, error) {
	h, err := b.session.Cgroups()
	if err != nil {
		return cgroups.Snapshot{}, err
	}
	parent := b.session.shownParent()
	box := cgroups.Box{Name: b.Name, Group: b.Cgroup(), PID: b.CommandPID()}
	if b.Has("cgroup") {
		if view, err := b.CgroupView(); err == nil {
			box.OwnView = view
		}
	}
	if parent == nil {
		return cgroups.Snapshot{}, errors.New("no cgroup yet: `cgroup new` makes the box's cgroup")
	}
	return cgroups.TakeSnapshot(h, parent, box, prev)
}

// CgroupReader returns a reader of stepbox's cgroup tree as the host
// alone sees it (no OwnView): it holds the hierarchy, the parent and the
// box's group as they are now and never asks the box, whose methods wait
// while a command runs, so the live view can read usage every second
// during one.
func (b *Box) CgroupReader() (func(prev *cgroups.Snapshot) (cgroups.Snapshot, error), error) {
	h, err := b.session.Cgroups()
	if err != nil {
		return nil, err
	}
	parent := b.session.shownParent()
	if parent == nil {
		return nil, errors.New("no cgroup yet: `cgroup new` makes the box's cgroup")
	}
	box := cgroups.Box{Name: b.Name, Group: b.Cgroup(), PID: b.CommandPID()}
	return func(prev *cgroups.Snapshot) (cgroups.Snapshot, error) {
		return cgroups.TakeSnapshot(h, parent, box, prev)
	}, nil
}
