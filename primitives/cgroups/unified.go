package cgroups

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// unified is cgroup v2: one tree, controllers switched on for a cgroup's
// children in its cgroup.subtree_control, processes only in leaves.
type unified struct {
	base
	mountRoot string   // the cgroup the mount at root shows at its top
	self      string   // the session's cgroup, as /proc/PID/cgroup shows it
	offered   []string // the root's cgroup.controllers
	// systemd runs the host (nil: it does not, or not on v2): the parent
	// is then a delegated scope, unit (scope.go).
	systemd Systemd
	unit    string
}

// v2Wanted are the controllers stepbox switches on on the way down.
var v2Wanted = []string{CPU, Memory, Pids}

// noInternalProcs is the v2 rule, said once for every error that meets it.
const noInternalProcs = "cgroup v2 lets no cgroup but the root hold processes while its children have controllers (the no-internal-processes rule, cgroups(7))"

func newUnified(b base, self []procfs.Cgroup, mounts []*procfs.MountInfo) (*unified, error) {
	u := &unified{base: b}
	for _, cg := range self {
		if cg.HierarchyID == 0 {
			u.self = path.Clean(cg.Path)
		}
	}
	if u.self == "" {
		return nil, fmt.Errorf("open cgroups: /proc/%d/cgroup has no 0:: line for cgroup v2", b.session)
	}
	found := false
	for _, m := range mounts {
		if m.FSType == "cgroup2" && path.Clean(m.MountPoint) == b.root {
			u.mountRoot, found = m.Root, true
		}
	}
	if !found {
		return nil, fmt.Errorf("open cgroups: no cgroup2 mount at %s in /proc/%d/mountinfo: %w", b.root, b.session, ErrNoCgroups)
	}
	top, err := readFile(filepath.Join(b.root, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("open cgroups: %w", err)
	}
	u.offered = strings.Fields(top)
	return u, nil
}

func (u *unified) Version() int          { return 2 }
func (u *unified) Controllers() []string { return slices.Clone(u.offered) }

// dir is where cgroup path p is on disk, with the controllers it offers.
func (u *unified) dir(p string) (Dir, error) {
	rel, err := relPath(p, u.mountRoot)
	if err != nil {
		return Dir{}, err
	}
	d := Dir{Path: path.Join(u.root, rel), Cgroup: path.Clean(p)}
	ctrl, err := readIn(u.fs, filepath.Join(d.Path, "cgroup.controllers"))
	if err != nil {
		return Dir{}, err
	}
	d.Controllers = strings.Fields(ctrl)
	return d, nil
}

// isRoot tells the host's root cgroup, the only one without cgroup.type;
// a container's cgroup namespace shows a non-root cgroup at the top.
func isRoot(fsys cgroupFS, dir string) bool {
	return !existsIn(fsys, filepath.Join(dir, "cgroup.type"))
}

// Place picks the parent's cgroup (place), then plans the
// controllers to switch on above it (wayDown). A cgroup on the way that
// holds processes can pass no controller down: the parent then goes above
// it where the kernel allows, or the reason says what it lacks.
func (u *unified) Place(override string) (Placement, error) {
	if override == "" && u.systemd != nil {
		return u.placeScope()
	}
	pl, err := u.place(override)
	if err != nil {
		return Placement{}, err
	}
	writes, reach, blocked, err := u.wayDown(pl.Dirs[0], v2Wanted)
	if err != nil {
		return Placement{}, fmt.Errorf("place stepbox's parent cgroup: %w", err)
	}
	if blocked != nil && override == "" {
		higher, err := u.above(blocked.Cgroup)
		if err != nil {
			return Placement{}, fmt.Errorf("place stepbox's parent cgroup: %w", err)
		}
		if higher != nil {
			n, _ := procCount(u.fs, blocked.Path)
			rule := "nearest"
			if isRoot(u.fs, higher.Path) {
				rule = "root"
			}
			pl = Placement{Rule: rule, Dirs: []Dir{*higher}, Reason: fmt.Sprintf(
				"%s; but %s above it holds %s of its own, so it cannot switch %s on for the cgroups below it (%s): the nearest cgroup above it without processes is %s",
				pl.Reason, blocked.Cgroup, step.Count(n, "process"), strings.Join(blocked.Controllers, " "), noInternalProcs, higher.Cgroup)}
			if writes, reach, blocked, err = u.wayDown(*higher, v2Wanted); err != nil {
				return Placement{}, fmt.Errorf("place stepbox's parent cgroup: %w", err)
			}
		}
	}
	if blocked != nil {
		pl.Reason += fmt.Sprintf("; %s holds processes of its own, so %s cannot reach the parent (%s)",
			blocked.Cgroup, strings.Join(blocked.Controllers, " "), noInternalProcs)
	}
	pl.Controllers, pl.Enable = reach, writes
	return pl, nil
}

// above returns the nearest cgroup above p that holds no processes, or the
// host's root; nil when the top of the mount is reached first.
func (u *unified) above(p string) (*Dir, error) {
	for q := path.Dir(path.Clean(p)); ; q = path.Dir(q) {
		d, err := u.dir(q)
		if err != nil {
			return nil, err
		}
		n, err := procCount(u.fs, d.Path)
		if err != nil {
			return nil, err
		}
		if n == 0 || isRoot(u.fs, d.Path) {
			return &d, nil
		}
		if q == "/" || q == path.Clean(u.mountRoot) {
			return nil, nil
		}
	}
}

// place is the v2 rule: under the session's own cgroup if it holds no
// processes or is the host's root, else under the nearest cgroup above it
// without processes; an override must name a cgroup without processes.
func (u *unified) place(override string) (Placement, error) {
	if override != "" {
		if err := CheckParentPath(override); err != nil {
			return Placement{}, fmt.Errorf("--cgroup-parent %q is %w", override, err)
		}
		d, err := u.dir(override)
		if err != nil {
			return Placement{}, fmt.Errorf("--cgroup-parent %q: no such cgroup: %w", override, err)
		}
		n, err := procCount(u.fs, d.Path)
		if err != nil {
			return Placement{}, fmt.Errorf("--cgroup-parent %q: %w", override, err)
		}
		if n > 0 && !isRoot(u.fs, d.Path) {
			return Placement{}, fmt.Errorf("--cgroup-parent %q holds %s: %s; name a cgroup without processes", override, step.Count(n, "process"), noInternalProcs)
		}
		return Placement{Rule: "override", Dirs: []Dir{d}, Reason: "--cgroup-parent " + override}, nil
	}
	busy := 0
	for p := path.Clean(u.self); ; p = path.Dir(p) {
		d, err := u.dir(p)
		if err != nil {
			return Placement{}, fmt.Errorf("place stepbox's parent cgroup: %w", err)
		}
		n, err := procCount(u.fs, d.Path)
		if err != nil {
			return Placement{}, fmt.Errorf("place stepbox's parent cgroup: %w", err)
		}
		switch {
		case isRoot(u.fs, d.Path) && p == u.self:
			return Placement{Rule: "session", Dirs: []Dir{d}, Reason: "the session runs in the root cgroup, which the no-internal-processes rule exempts, so the parent goes under it"}, nil
		case n == 0 && p == u.self:
			return Placement{Rule: "session", Dirs: []Dir{d}, Reason: "the session's cgroup holds no processes of its own, so the parent goes under it"}, nil
		case isRoot(u.fs, d.Path) || n == 0:
			rule := "nearest"
			if isRoot(u.fs, d.Path) {
				rule = "root"
			}
			return Placement{Rule: rule, Dirs: []Dir{d}, Reason: fmt.Sprintf(
				"the session's cgroup %s holds %s, and %s; the nearest cgroup above it without processes is %s (--cgroup-parent overrides)",
				u.self, step.Count(busy, "process"), noInternalProcs, p)}, nil
		}
		if p == u.self {
			busy = n
		}
		if p == "/" || p == u.mountRoot {
			where := "the top of the mount"
			if !isRoot(u.fs, d.Path) {
				where = "the top of the mount, " + d.Path + ", which is not the host's root cgroup but a container's own (a private cgroup namespace or a bind mount of a subtree), which stepbox does not own"
			}
			return Placement{}, fmt.Errorf("place stepbox's parent cgroup: %w: every cgroup from %s up to %s holds processes, and %s; the boxes run without cgroup steps. Give --cgroup-parent naming a cgroup without processes, or start the container with its processes in a leaf (an init that moves itself to a child cgroup, as systemd's init.scope)", ErrNoPlace, u.self, where, noInternalProcs)
		}
	}
}

// procCount counts the processes directly in the cgroup at dir.
func procCount(fsys cgroupFS, dir string) (int, error) {
	pids, err := pidsIn(fsys, filepath.Join(dir, "cgroup.procs"))
	return len(pids), err
}

// subtree reads the controllers switched on for dir's children.
func subtree(fsys cgroupFS, dir string) ([]string, error) {
	s, err := readIn(fsys, filepath.Join(dir, "cgroup.subtree_control"))
	return strings.Fields(s), err
}

// enable switches controllers on for dir's children and returns the ones
// that were off before.
func (u *unified) enable(s *step.Step, dir string, controllers []string) ([]string, error) {
	on, err := subtree(u.fs, dir)
	if err != nil {
		return nil, err
	}
	var missing, words []string
	for _, c := range controllers {
		if !slices.Contains(on, c) {
			missing = append(missing, c)
			words = append(words, "+"+c)
		}
	}
	if len(missing) == 0 {
		return nil, nil
	}
	err = writeFile(u.fs, s, filepath.Join(dir, "cgroup.subtree_control"), strings.Join(words, " "))
	return missing, explainV2(err)
}

// explainV2 adds the rule to the kernel's EBUSY, which alone says little.
func explainV2(err error) error {
	if step.Errno(err) == unix.EBUSY {
		return fmt.Errorf("%w: %s", err, noInternalProcs)
	}
	return err
}

func (u *unified) NewParent(override string) (*Group, *step.Step, error) {
	if override == "" && u.systemd != nil {
		return u.newScope()
	}
	pl, err := u.Place(override)
	if err != nil {
		return nil, nil, err
	}
	at := pl.Dirs[0]
	want := pl.Controllers
	g := (&Group{Dirs: []Dir{at}}).child(ParentName(u.id))
	g.Dirs[0].Controllers = want
	s := &step.Step{
		Command: "cgroup parent",
		Summary: fmt.Sprintf("created stepbox's parent cgroup %s with %s for its children (%s)", g.Dirs[0].Cgroup, strings.Join(want, " "), pl.Reason),
		Man:     []string{"cgroups(7)", "mkdir(2)"},
	}
	if err := u.switchOn(s, g, pl.Enable); err != nil {
		return nil, s, errors.Join(fmt.Errorf("cgroup parent: %w", err), u.undoEnable(s, g))
	}
	s.Undo = "rmdir " + g.Dirs[0].Path + " (children first)"
	if len(g.Enabled) > 0 {
		s.Undo += "; " + undoEnabled(g)
	}
	enabledNotes(s, g)
	if err := mkdir(u.fs, s, g.Dirs[0].Path); err != nil {
		return nil, s, errors.Join(fmt.Errorf("cgroup parent: %w", err), u.undoEnable(s, g))
	}
	if _, err := u.enable(s, g.Dirs[0].Path, want); err != nil {
		_, rerr := u.Remove(g)
		return nil, s, errors.Join(fmt.Errorf("cgroup parent: %w", err), rerr)
	}
	if err := limitParent(u.fs, s, g); err != nil {
		_, rerr := u.Remove(g)
		return nil, s, errors.Join(fmt.Errorf("cgroup parent: %w", err), rerr)
	}
	return g, s, nil
}

// undoEnable switches off what g.Enabled records, deepest first: a
// cgroup's controllers cannot go off while a child still has them on.
func (u *unified) undoEnable(s *step.Step, g *Group) error {
	var errs []error
	for i := len(g.Enabled) - 1; i >= 0; i-- {
		errs = append(errs, disable(u.fs, s, g.Enabled[i]))
	}
	return errors.Join(errs...)
}

func (u *unified) Create(parent *Group, box, id string) (*Group, *step.Step, error) {
	if parent == nil {
		return nil, nil, fmt.Errorf("cgroup new %s: no parent cgroup", box)
	}
	name, id, err := boxGroupName(box, id)
	if err != nil {
		return nil, nil, err
	}
	p := parent.Dirs[0].Path
	n, err := procCount(u.fs, p)
	if err != nil {
		return nil, nil, fmt.Errorf("cgroup new %s: %w", box, err)
	}
	if n > 0 {
		return nil, nil, fmt.Errorf("cgroup new %s: the parent %s holds %s: %s", box, p, step.Count(n, "process"), noInternalProcs)
	}
	g := parent.child(name)
	g.ID = id
	s := &step.Step{
		Command: "cgroup new",
		Summary: fmt.Sprintf("created cgroup %s for box %s, a leaf with %s", g.Dirs[0].Cgroup, box, strings.Join(g.Dirs[0].Controllers, " ")),
		Man:     []string{"cgroups(7)", "mkdir(2)"},
		Undo:    "cgroup rm: rmdir " + g.Dirs[0].Path,
	}
	if err := mkdir(u.fs, s, g.Dirs[0].Path); err != nil {
		return nil, s, fmt.Errorf("cgroup new %s: %w", box, err)
	}
	return g, s, nil
}

func (u *unified) Set(g *Group, file, value string) (*step.Step, error) {
	if g == nil {
		return nil, fmt.Errorf("cgroup set %s: %w", file, ErrNoGroup)
	}
	if err := controlFile(file); err != nil {
		return nil, err
	}
	d := g.Dirs[0]
	if err := writable(d.Path, file); err != nil {
		return nil, err
	}
	s := &step.Step{
		Command: fmt.Sprintf("cgroup set %s %s", file, value),
		Man:     []string{"cgroups(7)"},
		Undo:    "write the old value back, or remove the cgroup",
	}
	s.Tell(fmt.Sprintf("wrote %q to %s of %s", value, file, d.Cgroup),
		fmt.Sprintf("will write %q to %s of %s", value, file, d.Cgroup))
	if err := writeFile(u.fs, s, filepath.Join(d.Path, file), value); err != nil {
		return s, fmt.Errorf("cgroup set %s %s: %w", file, value, explainV2(err))
	}
	return s, nil
}

func (u *unified) Limit(g *Group, kind, value string) ([]Setting, *step.Step, error) {
	v, err := parseLimit(kind, value)
	if err != nil {
		return nil, nil, err
	}
	if g == nil {
		return nil, nil, fmt.Errorf("cgroup limit %s %s: %w", kind, value, ErrNoGroup)
	}
	d := g.Dirs[0]
	if !slices.Contains(d.Controllers, kind) {
		return nil, nil, fmt.Errorf("cgroup limit %s: %s has no %s controller (it has: %s; the host offers: %s)",
			kind, d.Cgroup, kind, strings.Join(d.Controllers, ", "), strings.Join(u.offered, ", "))
	}
	var set []Setting
	file := func(f, v string) { set = append(set, Setting{File: filepath.Join(d.Path, f), Value: v}) }
	n := maxOr(v.n, strconv.FormatInt(v.n, 10))
	switch kind {
	case Memory:
		// Swap first, as runc does: a memory.max below the box's usage
		// makes the kernel reclaim at once, and with swap still open it
		// would swap the box out rather than meet the OOM killer.
		if existsIn(u.fs, filepath.Join(d.Path, "memory.swap.max")) {
			file("memory.swap.max", maxOr(v.n, "0"))
		}
		file("memory.max", n)
	case Pids:
		file("pids.max", n)
	case CPU:
		quota := "max"
		if v.n != Unlimited {
			quota = strconv.FormatInt(cpuQuota(v.n), 10)
		}
		file("cpu.max", fmt.Sprintf("%s %d", quota, cpuPeriod))
	}
	s := &step.Step{
		Command: fmt.Sprintf("cgroup limit %s %s", kind, value),
		Man:     []string{"cgroups(7)"},
		Undo:    "cgroup limit " + kind + " max",
	}
	s.Tell(fmt.Sprintf("limited %s of %s to %s (cgroup v2 files)", kind, d.Cgroup, value),
		fmt.Sprintf("will limit %s of %s to %s (cgroup v2 files)", kind, d.Cgroup, value))
	return set, s, writeSettings(u.fs, s, set)
}

func (u *unified) Attach(g *Group, pids ...int) (*step.Step, error) {
	if g == nil {
		return nil, fmt.Errorf("cgroup attach: %w", ErrNoGroup)
	}
	if err := checkPIDs(pids); err != nil {
		return nil, err
	}
	d := g.Dirs[0]
	on, err := subtree(u.fs, d.Path)
	if err != nil {
		return nil, fmt.Errorf("cgroup attach: %w", err)
	}
	if len(on) > 0 && !isRoot(u.fs, d.Path) {
		return nil, fmt.Errorf("cgroup attach: %s has %s switched on for its children: %s; attach to a leaf", d.Cgroup, strings.Join(on, " "), noInternalProcs)
	}
	s := &step.Step{
		Command: "cgroup attach",
		Man:     []string{"cgroups(7)"},
		Undo:    "write the PIDs to another leaf's cgroup.procs, or end the processes",
	}
	s.Tell(fmt.Sprintf("moved %s into %s; their children start there", pidList(pids), d.Cgroup),
		fmt.Sprintf("will move %s into %s; their children will start there", pidList(pids), d.Cgroup))
	for _, pid := range pids {
		if err := writeFile(u.fs, s, filepath.Join(d.Path, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return s, fmt.Errorf("cgroup attach %d: %w", pid, explainV2(err))
		}
	}
	return s, nil
}

func (u *unified) Procs(g *Group) ([]int, error) {
	if g == nil {
		return nil, ErrNoGroup
	}
	pids, err := readPIDs(filepath.Join(g.Dirs[0].Path, "cgroup.procs"))
	slices.Sort(pids)
	return pids, err
}

func (u *unified) Stats(g *Group) (Stats, error) {
	if g == nil {
		return Stats{}, ErrNoGroup
	}
	return statsV2(g.Dirs[0].Path)
}
