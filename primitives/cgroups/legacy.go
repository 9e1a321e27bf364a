package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives/step"
)

// legacy is cgroup v1 (also the controllers of a hybrid host): one tree
// per controller, and a box's cgroup is a directory of the same name in
// each of them.
type legacy struct {
	base
	trees []v1Tree // sorted by name
	// track is the hybrid host's cgroup2 tree: no controllers, but it
	// tracks processes and has cgroup.kill (track.go); nil without one.
	track *v1Tree
}

// v1Tree is one mounted v1 hierarchy and the session's place in it.
type v1Tree struct {
	name        string   // as /proc/PID/cgroup names it: "cpu,cpuacct", "name=systemd"
	controllers []string // none for a named hierarchy
	mount       string   // mount point
	mountRoot   string   // the cgroup the mount shows at its top
	session     string   // the session's cgroup, as /proc/PID/cgroup shows it
}

// dir is where cgroup path p of this tree is on disk.
func (t v1Tree) dir(p string) (Dir, error) {
	rel, err := relPath(p, t.mountRoot)
	if err != nil {
		return Dir{}, fmt.Errorf("%s hierarchy: %w", t.name, err)
	}
	return Dir{Hierarchy: t.name, Path: path.Join(t.mount, rel), Cgroup: path.Clean(p), Controllers: t.controllers}, nil
}

func newLegacy(b base, self []procfs.Cgroup, mounts []*procfs.MountInfo) (*legacy, error) {
	l := &legacy{base: b}
	for _, cg := range self {
		if cg.HierarchyID == 0 {
			// The empty v2 tree of a hybrid host: no controllers to use,
			// but the box's processes are tracked there.
			for _, m := range mounts {
				if m.FSType == "cgroup2" && strings.HasPrefix(m.MountPoint, b.root+"/") {
					l.track = &v1Tree{name: "", mount: m.MountPoint, mountRoot: m.Root, session: cg.Path}
				}
			}
			continue
		}
		m := v1Mount(mounts, b.root, cg.Controllers)
		if m == nil {
			continue // mounted elsewhere or not at all
		}
		t := v1Tree{name: strings.Join(cg.Controllers, ","), mount: m.MountPoint, mountRoot: m.Root, session: cg.Path}
		for _, c := range cg.Controllers {
			if !strings.HasPrefix(c, "name=") {
				t.controllers = append(t.controllers, c)
			}
		}
		l.trees = append(l.trees, t)
	}
	if len(l.trees) == 0 {
		return nil, fmt.Errorf("open cgroups: no v1 hierarchy of session %d is mounted under %s: %w", b.session, b.root, ErrNoCgroups)
	}
	slices.SortFunc(l.trees, func(a, b v1Tree) int { return strings.Compare(a.name, b.name) })
	return l, nil
}

// v1Mount finds the mount under root of the v1 hierarchy with controllers.
func v1Mount(mounts []*procfs.MountInfo, root string, controllers []string) *procfs.MountInfo {
	for _, m := range mounts {
		if m.FSType != "cgroup" || !strings.HasPrefix(m.MountPoint, root+"/") {
			continue
		}
		all := true
		for _, c := range controllers {
			name, named := strings.CutPrefix(c, "name=")
			if (named && m.SuperOptions["name"] != name) || (!named && !hasKey(m.SuperOptions, c)) {
				all = false
			}
		}
		if all {
			return m
		}
	}
	return nil
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

func (l *legacy) Version() int { return 1 }

func (l *legacy) Controllers() []string {
	var cs []string
	for _, t := range l.trees {
		cs = append(cs, t.controllers...)
	}
	slices.Sort(cs)
	return cs
}

func (l *legacy) Place(override string) (Placement, error) {
	p := Placement{Rule: "session", Reason: "cgroup v1 lets processes and child cgroups share a cgroup, so the parent goes under the session's own cgroup in each hierarchy"}
	if override != "" {
		if err := CheckParentPath(override); err != nil {
			return Placement{}, fmt.Errorf("--cgroup-parent %q is %w", override, err)
		}
		p = Placement{Rule: "override", Reason: "--cgroup-parent " + override}
	}
	for _, t := range l.trees {
		at := t.session
		if override != "" {
			at = override
		}
		d, err := t.dir(at)
		if err != nil {
			return Placement{}, err
		}
		if !existsIn(l.fs, d.Path) {
			return Placement{}, fmt.Errorf("--cgroup-parent %q: no such cgroup in the %s hierarchy (%q)", override, t.name, d.Path)
		}
		if !isCgroupIn(l.fs, d.Path) {
			return Placement{}, fmt.Errorf("--cgroup-parent %q: not a cgroup in the %s hierarchy (%q is a file, not a cgroup's directory)", override, t.name, d.Path)
		}
		p.Dirs = append(p.Dirs, d)
	}
	if l.track != nil {
		at := l.track.session
		if override != "" {
			at = override
		}
		d, err := l.track.dir(at)
		if err == nil && isCgroupIn(l.fs, d.Path) {
			p.Track = []Dir{d}
		} else if override != "" {
			// The session's own cgroup may lack a tracking tree and the
			// pids hierarchy still tracks; a chosen PATH missing there
			// would leave every box untracked in it, said only by
			// `cgroup parent` (ut32 F5).
			if err == nil && existsIn(l.fs, d.Path) {
				err = fmt.Errorf("not a cgroup (%q is a file, not a cgroup's directory)", d.Path)
			} else if err == nil {
				err = fmt.Errorf("no such cgroup (%q)", d.Path)
			}
			return Placement{}, fmt.Errorf("--cgroup-parent %q: not in the cgroup2 tree that tracks the boxes: %w", override, err)
		}
	}
	return p, nil
}

func (l *legacy) NewParent(override string) (*Group, *step.Step, error) {
	pl, err := l.Place(override)
	if err != nil {
		return nil, nil, err
	}
	g := (&Group{Dirs: pl.Dirs}).child(ParentName(l.id))
	g.Track = (&Group{Dirs: pl.Track}).child(g.Name).Dirs
	s := &step.Step{
		Command: "cgroup parent",
		Summary: fmt.Sprintf("created stepbox's parent cgroup %s in %s (%s)", g.Name, step.Count(len(g.Dirs), "v1 hierarchy"), pl.Reason),
		Man:     []string{"cgroups(7)", "mkdir(2)"},
		Undo:    "rmdir every " + g.Name + " directory, children first",
	}
	if err := l.mkdirs(s, g, pl.Dirs); err != nil {
		return nil, s, err
	}
	// The cgroup2 tree only tracks: where it refuses, the v1 trees still
	// serve (the pids hierarchy tracks too).
	track := g.Track
	g.Track = nil
	for _, d := range track {
		if err := mkdir(l.fs, s, d.Path); err != nil {
			s.Notes = append(s.Notes, fmt.Sprintf("not in the cgroup2 tree (%v): the boxes are tracked in the v1 hierarchies only", err))
			continue
		}
		g.Track = append(g.Track, d)
		s.Notes = append(s.Notes, "and in the cgroup2 tree "+d.Path+", which has no controllers here but tracks the boxes' processes")
	}
	if err := limitParent(l.fs, s, g); err != nil {
		_, rerr := l.Remove(g)
		return nil, s, errors.Join(fmt.Errorf("cgroup parent: %w", err), rerr)
	}
	return g, s, nil
}

func (l *legacy) Create(parent *Group, box, id string) (*Group, *step.Step, error) {
	if parent == nil {
		return nil, nil, fmt.Errorf("cgroup new %s: no parent cgroup", box)
	}
	name, id, err := boxGroupName(box, id)
	if err != nil {
		return nil, nil, err
	}
	g := parent.child(name)
	g.ID = id
	s := &step.Step{
		Command: "cgroup new",
		Summary: fmt.Sprintf("created cgroup %s for box %s in %s", name, box, eachHierarchy(len(g.Dirs))),
		Man:     []string{"cgroups(7)", "mkdir(2)"},
		Undo:    "cgroup rm: rmdir every " + name + " directory",
	}
	return g, s, l.mkdirs(s, g, parent.Dirs)
}

// mkdirs makes g's directory in every hierarchy, removing the ones it made
// if one fails, so a failed step leaves the host as it was.
func (l *legacy) mkdirs(s *step.Step, g *Group, parents []Dir) error {
	var made []string
	for i, d := range g.Dirs {
		err := mkdir(l.fs, s, d.Path)
		if err == nil {
			made = append(made, d.Path)
			if slices.Contains(d.Controllers, "cpuset") {
				err = copyCpuset(l.fs, s, parents[i].Path, d.Path)
			}
		}
		if err != nil {
			errs := []error{err}
			for _, m := range made {
				errs = append(errs, rmdir(l.fs, s, m))
			}
			return fmt.Errorf("%s %s: %w", s.Command, g.Name, errors.Join(errs...))
		}
	}
	return nil
}

// copyCpuset fills a new v1 cpuset cgroup's cpus and mems from its parent:
// they start empty, and the kernel refuses to attach a task to a cpuset
// with no CPUs or memory nodes (ENOSPC; cgroups(7), cpuset(7)).
func copyCpuset(fsys cgroupFS, s *step.Step, parent, dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		have, err := readIn(fsys, filepath.Join(dir, f))
		if err != nil || have != "" {
			return err
		}
		v, err := readIn(fsys, filepath.Join(parent, f))
		if err != nil {
			return err
		}
		if err := writeFile(fsys, s, filepath.Join(dir, f), v); err != nil {
			return err
		}
	}
	return nil
}

// filesFor returns the dirs of g whose hierarchy holds control file f:
// memory.* lives in the memory tree, cgroup.procs and tasks in every tree.
func (l *legacy) filesFor(g *Group, f string) ([]Dir, error) {
	ctrl, _, dotted := strings.Cut(f, ".")
	if !dotted || ctrl == "cgroup" || f == "notify_on_release" {
		return g.Dirs, nil
	}
	d, ok := g.dir(ctrl)
	if !ok {
		return nil, fmt.Errorf("cgroup set %s: this host has no %s hierarchy (controllers: %s)", f, ctrl, strings.Join(l.Controllers(), ", "))
	}
	return []Dir{d}, nil
}

func (l *legacy) Set(g *Group, file, value string) (*step.Step, error) {
	if g == nil {
		return nil, fmt.Errorf("cgroup set %s: %w", file, ErrNoGroup)
	}
	if err := controlFile(file); err != nil {
		return nil, err
	}
	dirs, err := l.filesFor(g, file)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if err := writable(d.Path, file); err != nil {
			return nil, err
		}
	}
	s := &step.Step{
		Command: fmt.Sprintf("cgroup set %s %s", file, value),
		Man:     []string{"cgroups(7)"},
		Undo:    "write the old value back, or remove the cgroup",
	}
	s.Tell(fmt.Sprintf("wrote %q to %s of %s", value, file, g.Name), fmt.Sprintf("will write %q to %s of %s", value, file, g.Name))
	for _, d := range dirs {
		if err := writeFile(l.fs, s, filepath.Join(d.Path, file), value); err != nil {
			return s, fmt.Errorf("cgroup set %s %s: %w", file, value, err)
		}
	}
	return s, nil
}

// writable checks that dir holds control file f and that it can be written.
func writable(dir, f string) error {
	st, err := os.Stat(filepath.Join(dir, f))
	if err != nil {
		return fmt.Errorf("cgroup set %s: no such control file in %s (ls %s shows the files there)", f, dir, dir)
	}
	if st.Mode().Perm()&0o222 == 0 {
		return fmt.Errorf("cgroup set %s: %s is read-only: the kernel reports through it, it takes no value", f, filepath.Join(dir, f))
	}
	return nil
}

func (l *legacy) Limit(g *Group, kind, value string) ([]Setting, *step.Step, error) {
	v, err := parseLimit(kind, value)
	if err != nil {
		return nil, nil, err
	}
	if g == nil {
		return nil, nil, fmt.Errorf("cgroup limit %s %s: %w", kind, value, ErrNoGroup)
	}
	d, ok := g.dir(kind)
	if !ok {
		return nil, nil, fmt.Errorf("cgroup limit %s: this host offers no %s controller (available: %s)", kind, kind, strings.Join(l.Controllers(), ", "))
	}
	var set []Setting
	file := func(f, v string) { set = append(set, Setting{File: filepath.Join(d.Path, f), Value: v}) }
	switch kind {
	case Memory:
		n := strconv.FormatInt(v.n, 10) // -1 is v1's "no limit"
		swap := filepath.Join(d.Path, "memory.memsw.limit_in_bytes")
		if !exists(swap) {
			file("memory.limit_in_bytes", n)
			break
		}
		// memsw (memory+swap) must stay >= limit_in_bytes at every moment
		// (EINVAL otherwise), so raise memsw first and lower it last.
		cur, err := readInt(filepath.Join(d.Path, "memory.limit_in_bytes"))
		if err != nil {
			return nil, nil, err
		}
		if v.n == Unlimited || v.n > cur {
			file("memory.memsw.limit_in_bytes", n)
			file("memory.limit_in_bytes", n)
		} else {
			file("memory.limit_in_bytes", n)
			file("memory.memsw.limit_in_bytes", n)
		}
	case Pids:
		file("pids.max", maxOr(v.n, strconv.FormatInt(v.n, 10)))
	case CPU:
		file("cpu.cfs_period_us", strconv.Itoa(cpuPeriod))
		quota := int64(-1)
		if v.n != Unlimited {
			quota = cpuQuota(v.n)
		}
		file("cpu.cfs_quota_us", strconv.FormatInt(quota, 10))
	}
	s := &step.Step{
		Command: fmt.Sprintf("cgroup limit %s %s", kind, value),
		Man:     []string{"cgroups(7)"},
		Undo:    "cgroup limit " + kind + " max",
	}
	s.Tell(fmt.Sprintf("limited %s of %s to %s (cgroup v1 files)", kind, g.Name, value), fmt.Sprintf("will limit %s of %s to %s (cgroup v1 files)", kind, g.Name, value))
	return set, s, writeSettings(l.fs, s, set)
}

func (l *legacy) Attach(g *Group, pids ...int) (*step.Step, error) {
	if g == nil {
		return nil, fmt.Errorf("cgroup attach: %w", ErrNoGroup)
	}
	if err := checkPIDs(pids); err != nil {
		return nil, err
	}
	// One write per hierarchy: check first, so a gone process cannot end
	// up attached in some hierarchies and not in others.
	for _, pid := range pids {
		if _, err := l.proc.Proc(pid); err != nil {
			return nil, fmt.Errorf("cgroup attach %d: no such process: %w", pid, err)
		}
	}
	s := &step.Step{
		Command: "cgroup attach",
		Man:     []string{"cgroups(7)"},
		Undo:    "write the PIDs to the parent's cgroup.procs, or end the processes",
	}
	s.Tell(fmt.Sprintf("moved %s into %s in every hierarchy; their children start there", pidList(pids), g.Name),
		fmt.Sprintf("will move %s into %s in every hierarchy; their children will start there", pidList(pids), g.Name))
	for _, d := range g.Dirs {
		for _, pid := range pids {
			if err := writeFile(l.fs, s, filepath.Join(d.Path, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
				return s, fmt.Errorf("cgroup attach %d: %w", pid, err)
			}
		}
	}
	return s, nil
}

func (l *legacy) Procs(g *Group) ([]int, error) {
	if g == nil {
		return nil, ErrNoGroup
	}
	return procsIn(g.Dirs)
}

// writeSettings writes each setting in order, stopping at the first error.
func writeSettings(fsys cgroupFS, s *step.Step, set []Setting) error {
	for _, st := range set {
		if err := writeFile(fsys, s, st.File, st.Value); err != nil {
			return fmt.Errorf("%s: %w", s.Command, err)
		}
	}
	return nil
}

func maxOr(n int64, v string) string {
	if n == Unlimited {
		return "max"
	}
	return v
}

func checkPIDs(pids []int) error {
	if len(pids) == 0 {
		return errors.New("cgroup attach: no process to attach: start the box first")
	}
	for _, p := range pids {
		if p <= 0 {
			return fmt.Errorf("cgroup attach %d: not a process ID", p)
		}
	}
	return nil
}

func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return "PID " + strings.Join(s, ", ")
}

// eachHierarchy says where a v1 cgroup is made: "each of 9 v1
// hierarchies", or "the one v1 hierarchy".
func eachHierarchy(n int) string {
	if n == 1 {
		return "the one v1 hierarchy"
	}
	return "each of " + step.Count(n, "v1 hierarchy")
}
