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

	"stepbox/primitives/step"
)

// On a systemd host (cgroup v2, /run/systemd/system) the cgroup tree is
// systemd's: it owns every cgroup.subtree_control above a unit and
// rewrites them on daemon-reload, and a cgroup made beside its units is
// one it does not know. The legal place is a unit of stepbox's own that
// systemd delegates (Delegate=yes: the subtree below is the unit's
// process's to manage), as runc's and crun's systemd drivers do:
//
//   - stepbox asks systemd over D-Bus for a transient scope,
//     stepbox-<PID>-<start>.scope (named after the session, so the sweep
//     after a crash finds it again in the ledger), with the session's PID
//     in it and TasksMax=SessionPidsMax+scopeReserve;
//   - systemd moves the session there and switches the controllers on
//     above the scope itself;
//   - the session moves into a leaf of the scope, session, since a cgroup
//     that passes controllers down may hold no process;
//   - it switches the controllers on in the scope's own
//     cgroup.subtree_control and makes stepbox's parent, stepbox-<PID>,
//     a sibling of that leaf, with pids.max SessionPidsMax: the boxes'
//     cgroups go under it, so their limits never count the session's own
//     tasks (a fork bomb in a box cannot take the threads the session
//     needs to tear it down; issue 15);
//   - at the end, the session moves back to where it came from and stops
//     the scope: systemd ends what is left and removes the scope with
//     everything stepbox made or switched on inside it. Nothing above the
//     scope was written, so nothing there needs undoing.

// SessionLeaf is the leaf of the scope the session moves into.
const SessionLeaf = "session"

// ScopeUnit is the transient scope of session "<PID>-<start time>".
func ScopeUnit(session string) string { return ParentPrefix + session + ".scope" }

// scopeSlice is where the scope goes: system.slice as root (beside the
// host's services, not inside a user's session or user@.service, which
// systemd --user manages), app.slice of the user manager rootless.
func (u *unified) scopeSlice() (slice, cgroup string) {
	if u.systemd.Bus() == "user" {
		uid := strconv.Itoa(os.Getuid())
		return "app.slice", "/user.slice/user-" + uid + ".slice/user@" + uid + ".service/app.slice"
	}
	return "system.slice", "/system.slice"
}

// scopeReserve is what the scope's TasksMax allows beyond the boxes'
// SessionPidsMax: the session's own threads and host commands, which a
// fork bomb in a box, stopped at the parent's pids.max, cannot take.
const scopeReserve = 1024

// placeScope is the placement on a systemd host: stepbox's parent
// cgroup, stepbox-<PID>, goes in a scope of stepbox's own, which systemd
// makes and delegates, beside the session's leaf.
func (u *unified) placeScope() (Placement, error) {
	slice, at := u.scopeSlice()
	at = path.Join(at, u.unit)
	rel, err := relPath(at, u.mountRoot)
	if err != nil {
		return Placement{}, fmt.Errorf("place stepbox's parent cgroup: the %s slice: %w", slice, err)
	}
	d := Dir{Path: filepath.Join(u.root, rel), Cgroup: at}
	// What systemd can delegate: what reaches the slice's parent (the
	// user manager's own cgroup, rootless; the root's, as root).
	offered := u.offered
	if c, err := readFile(filepath.Join(filepath.Dir(filepath.Dir(d.Path)), "cgroup.controllers")); err == nil && u.systemd.Bus() == "user" {
		offered = strings.Fields(c)
	}
	var ctrls []string
	for _, c := range v2Wanted {
		if slices.Contains(offered, c) {
			ctrls = append(ctrls, c)
		}
	}
	return Placement{Rule: "scope", Dirs: []Dir{d}, Scope: u.unit, Controllers: ctrls, Reason: fmt.Sprintf(
		"systemd manages this host's cgroups: stepbox asks it (D-Bus, the %s bus) for a transient scope %s in %s with Delegate=yes, moves itself into the scope's leaf %q and makes its parent cgroup beside that leaf, so the boxes' limits never count the session; systemd switches the controllers on above the scope, and stopping the scope removes all of it",
		u.systemd.Bus(), u.unit, slice, SessionLeaf)}, nil
}

// scopeCaller is the PID the session names itself by to systemd: 0, the
// caller, whose PID systemd reads from the bus in its own PID namespace.
// The session's own PID is of the namespace it runs in, which need not
// be systemd's: stepbox in a container with the host's bus is PID 1
// there, and PID 1 to systemd is systemd ("a manager process, refusing").
const scopeCaller = 0

// startScopeCall is the D-Bus call, and the same as busctl would make it
// for the session (busctl's own 0 would be busctl).
func (u *unified) startScopeCall(slice string) (call, shellLine string) {
	tasks := SessionPidsMax + scopeReserve
	call = fmt.Sprintf("StartTransientUnit(%q, \"fail\", [Slice=%q, PIDs=[%d (the caller)], Delegate=true, TasksMax=%d]) on the %s bus",
		u.unit, slice, scopeCaller, tasks, u.systemd.Bus())
	bus := "--system"
	if u.systemd.Bus() == "user" {
		bus = "--user"
	}
	shellLine = fmt.Sprintf("busctl %s call org.freedesktop.systemd1 /org/freedesktop/systemd1 org.freedesktop.systemd1.Manager StartTransientUnit 'ssa(sv)a(sa(sv))' %s fail 4 Slice s %s PIDs au 1 %d Delegate b true TasksMax t %d 0",
		bus, u.unit, slice, u.session, tasks)
	return call, shellLine
}

// newScope makes the session's scope (see above) and, in it beside the
// session's leaf, stepbox's parent cgroup.
//
// In a plan (planFS) systemd's part cannot run: asking for the scope
// would make it, and there is no stand-in for the D-Bus manager. The
// plan records the call without making it, takes the scope as systemd
// will make it (placeScope's directory, delegating the controllers
// placeScope expects) and the session as moved there, and runs the rest
// — the session's leaf, the controllers switched on, the parent and its
// pids.max — as the real code against the stand-in.
func (u *unified) newScope() (*Group, *step.Step, error) {
	pl, err := u.placeScope()
	if err != nil {
		return nil, nil, err
	}
	slice, _ := u.scopeSlice()
	s := &step.Step{Command: "cgroup parent", Man: []string{"systemd.scope(5)", "systemd.resource-control(5)", "cgroups(7)"}}
	home, err := u.sessionCgroup()
	if err != nil {
		return nil, nil, fmt.Errorf("cgroup parent: %w", err)
	}
	plan, planned := planning(u.fs)
	start := func() error { return u.systemd.StartScope(u.unit, slice, scopeCaller, SessionPidsMax+scopeReserve) }
	if planned {
		start = func() error { plan.scope(pl); return nil }
	}
	call, line := u.startScopeCall(slice)
	if err := s.Do(call, start); err != nil {
		return nil, s, fmt.Errorf("cgroup parent: ask systemd for a delegated scope: %w; the boxes can still run, without cgroup steps (`stepbox doctor` checks the bus)", err)
	}
	shell(s, line)
	g := &Group{Name: ParentName(u.id), Scope: u.unit, Home: home}
	fail := func(err error) (*Group, *step.Step, error) {
		if planned {
			// No scope was asked for: none to stop.
			return nil, s, fmt.Errorf("cgroup parent: %w", err)
		}
		return nil, s, errors.Join(fmt.Errorf("cgroup parent: %w", err), u.removeScope(s, g))
	}
	cg, err := u.sessionCgroup()
	if planned {
		cg, err = pl.Dirs[0].Cgroup, nil
	}
	if err != nil {
		return fail(err)
	}
	if path.Base(cg) != u.unit {
		return fail(fmt.Errorf("systemd made scope %s, but the session is in %s", u.unit, cg))
	}
	scope, err := u.dir(cg)
	if err != nil {
		return fail(err)
	}
	parent := Dir{Path: filepath.Join(scope.Path, g.Name), Cgroup: path.Join(cg, g.Name)}
	g.Dirs = []Dir{parent}
	leaf := filepath.Join(scope.Path, SessionLeaf)
	if err := mkdir(u.fs, s, leaf); err != nil {
		return fail(err)
	}
	if err := writeFile(u.fs, s, filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(u.session)); err != nil {
		return fail(err)
	}
	u.self = path.Join(cg, SessionLeaf)
	var want []string
	for _, c := range pl.Controllers {
		if slices.Contains(scope.Controllers, c) {
			want = append(want, c)
		}
	}
	if _, err := u.enable(s, scope.Path, want); err != nil {
		return fail(explainV2(err))
	}
	if err := mkdir(u.fs, s, parent.Path); err != nil {
		return fail(err)
	}
	if _, err := u.enable(s, parent.Path, want); err != nil {
		return fail(explainV2(err))
	}
	g.Dirs[0].Controllers = want
	if err := limitParent(u.fs, s, g); err != nil {
		return fail(err)
	}
	s.Tell(fmt.Sprintf("systemd made scope %s (Delegate=yes) and moved the session there; the session moved into its leaf %s, and stepbox's parent %s beside it has %s for the boxes", cg, SessionLeaf, parent.Cgroup, strings.Join(want, " ")),
		fmt.Sprintf("systemd will make scope %s (Delegate=yes) and move the session there; the session will move into its leaf %s, and stepbox's parent %s beside it will have %s for the boxes", cg, SessionLeaf, parent.Cgroup, strings.Join(want, " ")))
	s.Undo = scopeUndo(home, u.unit)
	s.Notes = append(s.Notes, fmt.Sprintf("TasksMax=%d on the scope: the boxes' %d and %d more for the session's own threads and host commands", SessionPidsMax+scopeReserve, SessionPidsMax, scopeReserve))
	return g, s, nil
}

// scope is what StartScope will have systemd do, as a plan's reads see
// it: the scope's directory made, delegating the controllers placeScope
// expects (systemd switches them on above it).
func (p *planFS) scope(pl Placement) {
	dir := filepath.Clean(pl.Dirs[0].Path)
	p.made[dir] = true
	p.written[filepath.Join(dir, "cgroup.controllers")] = strings.Join(pl.Controllers, " ")
}

// scopeUndo is how newScope is undone.
func scopeUndo(home, unit string) string {
	return fmt.Sprintf("move the session back to %s, then stop %s: systemd ends what is left in it and removes it, with everything switched on inside it", home, unit)
}

// sessionCgroup reads the session's v2 cgroup from /proc/PID/cgroup.
func (u *unified) sessionCgroup() (string, error) {
	cgs, err := u.Membership(u.session)
	if err != nil {
		return "", err
	}
	for _, c := range cgs {
		if c.HierarchyID == 0 {
			return path.Clean(c.Path), nil
		}
	}
	return "", fmt.Errorf("/proc/%d/cgroup has no 0:: line", u.session)
}

// removeScope removes stepbox's parent in the scope with the boxes'
// cgroups, moves the session back home if it is still in the scope, and
// stops the scope. It writes nothing above the scope.
func (u *unified) removeScope(s *step.Step, g *Group) error {
	if u.systemd == nil {
		return fmt.Errorf("cgroup rm %s: in systemd scope %s, and systemd does not run this host", g.Name, g.Scope)
	}
	// The boxes' cgroups first, so the step shows them go; what is left
	// (a cgroup still busy) goes with the scope, and its error with it.
	var boxes error
	scope := ""
	if len(g.Dirs) > 0 {
		boxes = removeTree(u.fs, s, g.Dirs[0].Path)
		scope = filepath.Dir(g.Dirs[0].Path)
		if cg, err := u.sessionCgroup(); err == nil && strings.HasPrefix(cg+"/", path.Dir(path.Clean(g.Dirs[0].Cgroup))+"/") {
			home, err := u.dir(g.Home)
			if err == nil {
				err = writeFile(u.fs, s, filepath.Join(home.Path, "cgroup.procs"), strconv.Itoa(u.session))
			}
			if err != nil {
				// Stopping the scope now would end the session itself.
				s.Notes = append(s.Notes, fmt.Sprintf("the session stays in %s until it exits (moving it back to %s: %v); systemd removes the scope then", g.Scope, g.Home, err))
				return boxes
			}
			u.self = g.Home
		}
	}
	call := fmt.Sprintf("StopUnit(%q, \"replace\") on the %s bus", g.Scope, u.systemd.Bus())
	err := s.Do(call, func() error { return u.systemd.StopScope(g.Scope) })
	if u.systemd.Bus() == "user" {
		shell(s, "systemctl --user stop "+g.Scope)
	} else {
		shell(s, "systemctl stop "+g.Scope)
	}
	if scope != "" && exists(scope) {
		return errors.Join(boxes, err)
	}
	return err
}

// Remove removes g: a scope through systemd, anything else children
// first as base.Remove does.
func (u *unified) Remove(g *Group) (*step.Step, error) {
	if g == nil || g.Scope == "" {
		return u.base.Remove(g)
	}
	s := &step.Step{
		Command: "cgroup rm " + g.Name,
		Summary: "removed the boxes' cgroups in scope " + g.Scope + " and stopped it",
		Man:     []string{"systemd.scope(5)", "cgroups(7)", "rmdir(2)"},
	}
	return s, u.removeScope(s, g)
}
