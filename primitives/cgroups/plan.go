package cgroups

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"stepbox/primitives/step"
)

// planFS stands in for the kernel's cgroup filesystem in a plan: it
// answers every mkdir, open, write and close as if it worked, and does
// none of them. The record the real code writes against it is the plan.
type planFS struct{}

// planFD is the descriptor a planned open answers with: the lowest a
// fresh process would get.
const planFD = 3

func (planFS) Mkdir(string, uint32) error         { return nil }
func (planFS) Rmdir(string) error                 { return nil }
func (planFS) Open(string, int) (int, error)      { return planFD, nil }
func (planFS) Write(_ int, p []byte) (int, error) { return len(p), nil }
func (planFS) Close(int) error                    { return nil }

// Planning returns h with the kernel replaced by a stand-in that changes
// nothing: Set, Limit and Attach on it run their real code — the same
// checks, translations and record — and write nothing. Mark the records
// it returns with MarkNotRun.
func Planning(h Hierarchy) Hierarchy {
	switch v := h.(type) {
	case *legacy:
		c := *v
		c.fs = planFS{}
		return &c
	case *unified:
		c := *v
		c.fs = planFS{}
		return &c
	}
	return h
}

// PlanCreate is the record Create(parent, box, id) will write: the
// session's parent cgroup first when parent is nil (override is
// --cgroup-parent), then the box's own. Directories that do not exist
// yet read as a fresh cgroup does: empty cpuset files, no controllers on.
func PlanCreate(h Hierarchy, parent *Group, session int, box, id, override string) (*Group, *step.Step, error) {
	name, id, err := boxGroupName(box, id)
	if err != nil {
		return nil, nil, err
	}
	// The undo lines are NewParent's and Create's, joined as Step.Merge
	// joins them.
	s := &step.Step{Command: "cgroup new", Man: []string{"cgroups(7)", "mkdir(2)"}}
	_, v2 := h.(*unified)
	var undo []string
	if parent == nil {
		pl, err := h.Place(override)
		if err != nil {
			return nil, nil, err
		}
		parent = (&Group{Dirs: pl.Dirs}).child(ParentName(parentID(h, session)))
		if u, ok := h.(*unified); ok && pl.Scope != "" {
			home := u.planScope(s, pl, parent)
			planUnifiedParent(s, pl, parent)
			undo = append(undo, scopeUndo(home, pl.Scope))
		} else if v2 {
			planUnifiedParent(s, pl, parent)
			undo = append(undo, "rmdir "+parent.Dirs[0].Path+" (children first)")
			if len(pl.Enable) > 0 {
				undo = append(undo, undoEnabled(&Group{Enabled: pl.Enable}))
			}
		} else {
			planLegacyDirs(s, parent, pl.Dirs)
			parent.Track = (&Group{Dirs: pl.Track}).child(parent.Name).Dirs
			for _, d := range parent.Track {
				mkdir(planFS{}, s, d.Path)
			}
			undo = append(undo, "rmdir every "+parent.Name+" directory, children first")
		}
		limitParent(planFS{}, s, parent)
	}
	g := parent.child(name)
	g.ID = id
	if v2 {
		mkdir(planFS{}, s, g.Dirs[0].Path)
		s.Summary = fmt.Sprintf("will make cgroup %s for box %s, a leaf with %s", g.Dirs[0].Cgroup, box, strings.Join(g.Dirs[0].Controllers, " "))
		undo = append(undo, "cgroup rm: rmdir "+g.Dirs[0].Path)
	} else {
		planLegacyDirs(s, g, parent.Dirs)
		s.Summary = fmt.Sprintf("will make cgroup %s for box %s in %s", g.Name, box, eachHierarchy(len(g.Dirs)))
		undo = append(undo, "cgroup rm: rmdir every "+g.Name+" directory")
	}
	s.Undo = strings.Join(undo, "; ")
	s.MarkNotRun()
	return g, s, nil
}

// planLegacyDirs plans legacy.mkdirs: a directory in every hierarchy, and
// the cpuset one's cpus and mems copied from the nearest ancestor that
// exists, since a new v1 cpuset starts empty.
func planLegacyDirs(s *step.Step, g *Group, parents []Dir) {
	for i, d := range g.Dirs {
		mkdir(planFS{}, s, d.Path)
		if !slices.Contains(d.Controllers, "cpuset") {
			continue
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			v, err := nearestValue(parents[i].Path, f)
			if err == nil {
				writeFile(planFS{}, s, filepath.Join(d.Path, f), v)
			}
		}
	}
}

// nearestValue reads control file f in dir or, where dir is only planned,
// in its nearest existing ancestor.
func nearestValue(dir, f string) (string, error) {
	for ; dir != "/" && dir != "."; dir = filepath.Dir(dir) {
		if exists(dir) {
			return readFile(filepath.Join(dir, f))
		}
	}
	return "", fmt.Errorf("no cgroup above %s holds %s", dir, f)
}

// planUnifiedParent plans unified.NewParent: switch the controllers on
// in each cgroup above the parent that has them off (pl.Enable, top
// first), mkdir the parent, and switch them on for its children.
func planUnifiedParent(s *step.Step, pl Placement, parent *Group) {
	parent.Dirs[0].Controllers = pl.Controllers
	for _, e := range pl.Enable {
		var words []string
		for _, c := range e.Controllers {
			words = append(words, "+"+c)
		}
		writeFile(planFS{}, s, filepath.Join(e.Path, "cgroup.subtree_control"), strings.Join(words, " "))
	}
	enabledNotes(s, &Group{Enabled: pl.Enable})
	mkdir(planFS{}, s, parent.Dirs[0].Path)
	var all []string
	for _, c := range pl.Controllers {
		all = append(all, "+"+c)
	}
	if len(all) > 0 {
		writeFile(planFS{}, s, filepath.Join(parent.Dirs[0].Path, "cgroup.subtree_control"), strings.Join(all, " "))
	}
}

// parentID is the session ID h names the parent by; a hierarchy of
// another kind, the session PID alone.
func parentID(h Hierarchy, session int) string {
	switch h := h.(type) {
	case *unified:
		return h.id
	case *legacy:
		return h.id
	}
	return strconv.Itoa(session)
}
