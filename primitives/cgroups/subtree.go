package cgroups

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"stepbox/primitives/step"
)

// On cgroup v2 a cgroup offers its children only the controllers its
// parent switched on in cgroup.subtree_control, so the cpu controller
// reaches stepbox's parent only if every cgroup from the top of the tree
// down to the parent's place has it on. On a systemd host stepbox asks
// systemd for a delegated scope (scope.go), and systemd switches them on
// itself. Elsewhere (an init without a cgroup manager) NewParent switches
// the missing ones on, level by level, and records each write in
// Group.Enabled.
//
// It never switches them off again: a controller's "-" in
// cgroup.subtree_control takes it from every child of that cgroup, and
// the kernel cannot tell whose it was: another session, or a sibling
// systemd or the learner made meanwhile, may use it by then (and while one
// does, the kernel refuses with EBUSY). Two sessions undoing each other's
// writes used to leave a controller on, or strip a sibling's. runc's
// cgroupfs driver leaves them on too; what stepbox enabled inside its own
// scope goes with the scope.

// leftOn says why NewParent's writes above the parent stay.
const leftOn = "stepbox never switches a controller off in a cgroup it did not make: the kernel cannot tell which child it was switched on for, and a cgroup made since (another session's, systemd's) may use it; on a systemd host stepbox asks for a delegated scope instead and writes nothing above it"

// wayDown plans the controllers want from the top of the mount down to at:
// for each cgroup on the way (top first) the wanted controllers it offers
// but has off in cgroup.subtree_control. It returns those writes, the
// controllers that reach at's children, and, if a cgroup on the way holds
// processes and so may not switch any on (the no-internal-processes rule;
// the host's root is exempt), that cgroup and what it keeps from at.
func (u *unified) wayDown(at Dir, want []string) (writes []Dir, reach []string, blocked *Dir, err error) {
	dirs, err := u.downTo(at.Cgroup)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, c := range want {
		if slices.Contains(dirs[0].Controllers, c) {
			reach = append(reach, c)
		}
	}
	for _, d := range dirs {
		on, err := subtree(d.Path)
		if err != nil {
			return nil, nil, nil, err
		}
		var missing []string
		for _, c := range reach {
			if !slices.Contains(on, c) {
				missing = append(missing, c)
			}
		}
		if len(missing) == 0 {
			continue
		}
		n, err := procCount(d.Path)
		if err != nil {
			return nil, nil, nil, err
		}
		if n > 0 && !isRoot(d.Path) {
			if blocked == nil {
				blocked = &Dir{Path: d.Path, Cgroup: d.Cgroup, Controllers: missing}
			}
			reach = slices.DeleteFunc(reach, func(c string) bool { return slices.Contains(missing, c) })
			continue
		}
		writes = append(writes, Dir{Path: d.Path, Cgroup: d.Cgroup, Controllers: missing})
	}
	return writes, reach, blocked, nil
}

// downTo lists the cgroups from the top of the mount down to cgroup p,
// top first, each with the controllers it offers.
func (u *unified) downTo(p string) ([]Dir, error) {
	var paths []string
	for q := path.Clean(p); ; q = path.Dir(q) {
		paths = append(paths, q)
		if q == "/" || q == path.Clean(u.mountRoot) {
			break
		}
	}
	slices.Reverse(paths)
	dirs := make([]Dir, 0, len(paths))
	for _, q := range paths {
		d, err := u.dir(q)
		if err != nil {
			return nil, err
		}
		dirs = append(dirs, d)
	}
	return dirs, nil
}

// switchOn makes the writes Place planned, top first, adding each to
// g.Enabled as it succeeds; on a failure it switches back off what it
// switched on.
func (u *unified) switchOn(s *step.Step, g *Group, writes []Dir) error {
	for _, w := range writes {
		// enable re-reads subtree_control: another session may have
		// switched some on meanwhile, and those are not stepbox's to undo.
		on, err := u.enable(s, w.Path, w.Controllers)
		if err != nil {
			return fmt.Errorf("switch %s on in %s: %w", strings.Join(w.Controllers, " "), w.Cgroup, err)
		}
		if len(on) > 0 {
			g.Enabled = append(g.Enabled, Dir{Path: w.Path, Cgroup: w.Cgroup, Controllers: on})
		}
	}
	return nil
}

// enabledNotes tells, in the step record, what NewParent switched on above
// the parent, and that it stays.
func enabledNotes(s *step.Step, g *Group) {
	if len(g.Enabled) == 0 {
		return
	}
	s.Notes = append(s.Notes,
		"switched on "+switchedOn(g.Enabled)+" (cgroup.subtree_control): a cgroup offers its children only what its parent switched on, so each cgroup above the parent must pass the controllers down",
		"they stay on after the session: "+leftOn)
}

// switchedOn lists writes as "cpu in /user.slice, cpu in /user.slice/user-0.slice".
func switchedOn(writes []Dir) string {
	var where []string
	for _, e := range writes {
		where = append(where, fmt.Sprintf("%s in %s", strings.Join(e.Controllers, " "), e.Cgroup))
	}
	return strings.Join(where, ", ")
}

// HostChanges says what NewParent will switch on above the parent, and
// that it stays; "" when it changes nothing of the host's.
func (p Placement) HostChanges() string {
	if len(p.Enable) == 0 {
		return ""
	}
	return "switches on " + switchedOn(p.Enable) + ", which stays on after the session: " + leftOn
}
