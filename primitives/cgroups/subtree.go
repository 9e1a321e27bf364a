package cgroups

import (
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"stepbox/primitives/step"
)

// On cgroup v2 a cgroup offers its children only the controllers its
// parent switched on in cgroup.subtree_control, so the cpu controller
// reaches stepbox's parent only if every cgroup from the top of the tree
// down to the parent's place has it on. A stock systemd host switches cpu
// on at the root and nowhere below (user.slice and user-0.slice get memory
// and pids): NewParent switches the missing ones on, level by level, and
// records each write in Group.Enabled so Remove switches off exactly those.
//
// That changes the host's cgroup settings for the session's lifetime; it
// happens only where systemd does not run the host (on a systemd host
// stepbox asks for a delegated scope, scope.go, and writes nothing above
// it, so nothing there is ever switched off).
//
// Switching a controller off again ("-cpu") takes it from every child of
// that cgroup, and the kernel cannot tell whom it was switched on for: a
// cgroup made there since (another session's parent, a service started
// meanwhile) may use it. So Remove switches off only where no cgroup was
// made since NewParent switched it on (Dir.Kids records the children
// then); elsewhere it leaves the controller on and says so.

// delegateAdvice is what avoids the writes.
const delegateAdvice = "under systemd, stepbox asks for a delegated scope instead and writes nothing above it"

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
		on, err := subtree(u.fs, d.Path)
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
		n, err := procCount(u.fs, d.Path)
		if err != nil {
			return nil, nil, nil, err
		}
		if n > 0 && !isRoot(u.fs, d.Path) {
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
			kids, _ := subdirs(w.Path)
			g.Enabled = append(g.Enabled, Dir{Path: w.Path, Cgroup: w.Cgroup, Controllers: on, Kids: kids})
		}
	}
	return nil
}

// enabledNotes tells, in the step record, what NewParent switched on above
// the parent, that it lasts as long as the session, and the alternative.
func enabledNotes(s *step.Step, g *Group) {
	if len(g.Enabled) == 0 {
		return
	}
	s.Notes = append(s.Notes,
		"switched on "+switchedOn(g.Enabled)+" (cgroup.subtree_control): a cgroup offers its children only what its parent switched on, so each cgroup above the parent must pass the controllers down",
		lifetime)
}

const lifetime = "this changes the host's cgroup settings for the session's lifetime only: stepbox switches them off again as it exits, except where a cgroup made there since may use them (then they stay on, said); " + delegateAdvice

// switchedOn lists writes as "cpu in /user.slice, cpu in /user.slice/user-0.slice".
func switchedOn(writes []Dir) string {
	var where []string
	for _, e := range writes {
		where = append(where, fmt.Sprintf("%s in %s", strings.Join(e.Controllers, " "), e.Cgroup))
	}
	return strings.Join(where, ", ")
}

// HostChanges says what NewParent will switch on above the parent, for
// how long, and the alternative; "" when it changes nothing of the host's.
func (p Placement) HostChanges() string {
	if len(p.Enable) == 0 {
		return ""
	}
	return "switches on " + switchedOn(p.Enable) + "; " + lifetime
}

// undoEnabled is the shell form of switching Enabled off, deepest first.
func undoEnabled(g *Group) string {
	var lines []string
	for i := len(g.Enabled) - 1; i >= 0; i-- {
		e := g.Enabled[i]
		var words []string
		for _, c := range e.Controllers {
			words = append(words, "-"+c)
		}
		lines = append(lines, fmt.Sprintf("echo %s > %s", shellWord(strings.Join(words, " ")), filepath.Join(e.Path, "cgroup.subtree_control")))
	}
	return strings.Join(lines, "; ")
}
