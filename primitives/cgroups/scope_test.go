package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"stepbox/primitives/step"
)

// fixtureSystemd does on a v2 fixture tree what systemd's manager does
// for StartTransientUnit and StopUnit of a scope with Delegate=yes
// (systemd's cgroup code, unit_realize_cgroup and cg_trim): it makes the
// slice if missing, switches the scope's controllers on in every cgroup
// above it, makes the scope, sets its pids.max from TasksMax, moves the
// PID in (and /proc/PID/cgroup with it); stopping ends what is in the
// scope and removes it with the delegated subtree. Its writes go through
// the fixture's kernel rules.
type fixtureSystemd struct {
	f       *v2Fixture
	started []string
	stopped []string
	asked   []int // the PIDs StartScope was asked to move
	refuse  error // the bus's answer to StartTransientUnit, when set
}

func (d *fixtureSystemd) Bus() string { return "system" }

func (d *fixtureSystemd) Ping() (string, error) { return "", d.refuse }

func (d *fixtureSystemd) StartScope(unit, slice string, pid int, tasksMax uint64) error {
	if d.refuse != nil {
		return d.refuse
	}
	f := d.f
	dir := f.root
	for _, part := range []string{slice, unit} {
		// systemd's default controllers for units: cpu io memory pids.
		var on []string
		for _, c := range strings.Fields(f.readAbs(dir, "cgroup.controllers")) {
			if slices.Contains([]string{"cpu", "io", "memory", "pids"}, c) {
				on = append(on, "+"+c)
			}
		}
		if len(on) > 0 {
			f.write(dir, "cgroup.subtree_control", strings.Join(on, " "))
		}
		dir = filepath.Join(dir, part)
		if !exists(dir) {
			if err := f.Mkdir(dir, 0o755); err != nil {
				return err
			}
		}
	}
	f.write(dir, "pids.max", strconv.FormatUint(tasksMax, 10))
	d.asked = append(d.asked, pid)
	if pid == 0 { // the caller: the session, whose /proc the fixture made last
		pid, _ = strconv.Atoi(filepath.Base(f.procDir))
	}
	f.write(dir, "cgroup.procs", strconv.Itoa(pid))
	rel := "/" + strings.TrimPrefix(dir, f.root+"/")
	d.started = append(d.started, unit)
	return os.WriteFile(filepath.Join(f.procDir, "cgroup"), []byte("0::"+rel+"\n"), 0o444)
}

func (d *fixtureSystemd) StopScope(unit string) error {
	d.stopped = append(d.stopped, unit)
	var dirs []string
	filepath.WalkDir(d.f.root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() && (filepath.Base(p) == unit || slices.ContainsFunc(dirs, func(s string) bool { return strings.HasPrefix(p, s+"/") })) {
			dirs = append(dirs, p)
		}
		return nil
	})
	slices.Reverse(dirs) // children first
	for _, p := range dirs {
		os.WriteFile(filepath.Join(p, "cgroup.procs"), nil, 0o644) // ended
		if err := d.f.Rmdir(p); err != nil {
			return err
		}
	}
	return nil
}

// subtreeControls reads every cgroup.subtree_control of the fixture but
// those under skip.
func (f *v2Fixture) subtreeControls(skip string) map[string]string {
	out := map[string]string{}
	filepathWalkDirs(f.root, func(d string) error {
		if skip == "" || (d != skip && !strings.HasPrefix(d, skip+"/")) {
			out[strings.TrimPrefix(d, f.root)] = f.readAbs(d, "cgroup.subtree_control")
		}
		return nil
	})
	return out
}

// The session runs under sudo from a desktop terminal (a scope in the user
// manager's app.slice) or from an ssh login (session-4.scope): on a
// systemd host its parent is a delegated scope of its own in
// system.slice; the session moves into the scope's leaf, the boxes'
// cgroups are the leaf's siblings with cpu memory pids, nothing above the
// scope is written by stepbox, and at the end the session goes home and
// the scope is stopped.
func TestScopeOnASystemdHostHoldsTheSessionAndItsBoxes(t *testing.T) {
	for _, from := range []string{
		"user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-terminal-4.scope",
		"user.slice/user-1000.slice/session-4.scope",
	} {
		t.Run(filepath.Base(from), func(t *testing.T) {
			tree := systemdTree()
			tree["user.slice/user-1000.slice/user@1000.service"] = nil
			tree["user.slice/user-1000.slice/user@1000.service/app.slice"] = nil
			tree[from] = []int{4242, 4300}
			tree["system.slice"] = nil
			f := newV2Fixture(t, "+cpu +io +memory +pids", tree)
			u := f.open(4242, "/"+from, "/")
			sd := &fixtureSystemd{f: f}
			u.systemd, u.unit = sd, ScopeUnit("4242-98765")
			pl, err := u.Place("")
			if err != nil {
				t.Fatal(err)
			}
			if pl.Rule != "scope" || pl.Dirs[0].Cgroup != "/system.slice/stepbox-4242-98765.scope" || pl.Scope != "stepbox-4242-98765.scope" || !strings.Contains(pl.Reason, "Delegate=yes") {
				t.Fatalf("placement = %+v, want in a delegated scope in /system.slice", pl)
			}
			if !slices.Equal(pl.Controllers, []string{CPU, Memory, Pids}) {
				t.Errorf("placement controllers = %v, want cpu memory pids", pl.Controllers)
			}
			outside := "/system.slice/stepbox-4242-98765.scope"
			plan := planNew(t, u, nil, "web", "0123456789ab")
			if len(sd.started) > 0 || exists(filepath.Join(f.root, outside)) {
				t.Fatal("planning asked systemd for the scope")
			}
			parent, s, err := u.NewParent("")
			if err != nil {
				t.Fatal(err)
			}
			// What systemd itself switched on above the scope is the
			// baseline: stepbox writes nothing there, at any point.
			before := f.subtreeControls(filepath.Join(f.root, outside))
			if !slices.Equal(sd.started, []string{"stepbox-4242-98765.scope"}) {
				t.Fatalf("scopes started: %v", sd.started)
			}
			// By 0, the caller: systemd's PID namespace need not be the
			// session's (in a container the session may be PID 1, which
			// to systemd is itself).
			if !slices.Equal(sd.asked, []int{0}) {
				t.Errorf("systemd was asked to move PIDs %v into the scope, want [0], the caller", sd.asked)
			}
			if parent.Scope == "" || parent.Dirs[0].Cgroup != outside+"/stepbox-4242-0" || parent.Home != "/"+from {
				t.Fatalf("parent = %+v, want stepbox-4242-0 in the scope at %s, home %s", parent, outside, from)
			}
			if got := f.read(outside[1:]+"/session", "cgroup.procs"); got != "4242" {
				t.Errorf("the session's leaf holds %q, want 4242", got)
			}
			if got := f.read(outside[1:], "cgroup.procs"); got != "" {
				t.Errorf("the scope itself holds %q: a cgroup that passes controllers down holds none", got)
			}
			for _, d := range []string{outside[1:], outside[1:] + "/stepbox-4242-0"} {
				if got := f.read(d, "cgroup.subtree_control"); got != "cpu memory pids" {
					t.Errorf("%s subtree_control = %q, want cpu memory pids", d, got)
				}
			}
			// The boxes' limit is the parent's; the session, beside it, is
			// not counted in it.
			if got := f.read(outside[1:]+"/stepbox-4242-0", "pids.max"); got != "4096" {
				t.Errorf("the parent's pids.max is %q, want 4096", got)
			}
			if got := f.read(outside[1:], "pids.max"); got != "5120" {
				t.Errorf("the scope's pids.max (TasksMax) is %q, want 4096 for the boxes and 1024 for the session", got)
			}
			if got := f.read(from, "cgroup.procs"); got != "4300" {
				t.Errorf("the terminal's scope holds %q, want only the shell 4300", got)
			}
			if !strings.Contains(strings.Join(s.Shell, "\n"), "StartTransientUnit") || !strings.Contains(strings.Join(s.Notes, "\n"), "TasksMax=5120") {
				t.Errorf("the step does not show the D-Bus call and the task limit: %q %q", s.Shell, s.Notes)
			}
			box, cst, err := u.Create(parent, "web", "0123456789ab")
			if err != nil {
				t.Fatal(err)
			}
			rec := &step.Step{}
			rec.Merge(s)
			rec.Merge(cst)
			samePlan(t, "cgroup new in a scope", plan, rec)
			plan = planNew(t, u, parent, "db", "89abcdef0123")
			db, rec, err := u.Create(parent, "db", "89abcdef0123")
			if err != nil {
				t.Fatal(err)
			}
			samePlan(t, "cgroup new in the scope's parent", plan, rec)
			if _, err := u.Remove(db); err != nil {
				t.Fatal(err)
			}
			if got := f.read(outside[1:]+"/stepbox-4242-0/"+box.Name, "cgroup.controllers"); got != "cpu memory pids" {
				t.Errorf("box cgroup.controllers = %q, want cpu memory pids", got)
			}
			tracked, err := TrackGroup(parent, "web", box.ID)
			if err != nil || tracked.Dirs[0].Cgroup != outside+"/stepbox-4242-0/web.track" {
				t.Fatalf("tracking cgroup %+v (%v), want %s/stepbox-4242-0/web.track", tracked, err, outside)
			}
			if _, err := u.Attach(box, 5000); err != nil {
				t.Fatal(err)
			}
			if _, _, err := u.Limit(box, Pids, "20"); err != nil {
				t.Fatal(err)
			}
			rs, err := u.Remove(parent)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sd.stopped, []string{"stepbox-4242-98765.scope"}) {
				t.Errorf("scopes stopped: %v", sd.stopped)
			}
			if exists(filepath.Join(f.root, outside)) {
				t.Errorf("the scope is still there after Remove")
			}
			if got := f.read(from, "cgroup.procs"); got != "4300\n4242" {
				t.Errorf("home holds %q after Remove, want the session back beside the shell", got)
			}
			for _, c := range append(s.Calls, rs.Calls...) {
				if strings.Contains(c.Syscall, `"-`) {
					t.Errorf("a controller was switched off: %s", c.Syscall)
				}
			}
			after := f.subtreeControls("")
			for d, v := range before {
				if after[d] != v {
					t.Errorf("%s subtree_control %q -> %q: stepbox wrote outside its scope", d, v, after[d])
				}
			}
		})
	}
}

// A cgroup systemd makes during the session beside stepbox's (a service
// started meanwhile) keeps its controllers after the session: on a
// systemd host nothing above the scope is written, and without systemd
// Remove leaves cpu on where a cgroup was made since it switched it on
// (a "-cpu" there would take cpu from the sibling too).
func TestASiblingMadeDuringTheSessionKeepsItsControllers(t *testing.T) {
	for _, withSystemd := range []bool{true, false} {
		t.Run(map[bool]string{true: "scope", false: "no systemd"}[withSystemd], func(t *testing.T) {
			f := debianTree(t)
			u := f.open(4242, session, "/")
			at := "user.slice/user-1000.slice"
			if withSystemd {
				u.systemd, u.unit = &fixtureSystemd{f: f}, ScopeUnit("4242-1")
				at = "system.slice"
				f.Mkdir(filepath.Join(f.root, at), 0o755)
			}
			parent, _, err := u.NewParent("")
			if err != nil {
				t.Fatal(err)
			}
			sibling := filepath.Join(f.root, at, "late.service")
			if err := f.Mkdir(sibling, 0o755); err != nil {
				t.Fatal(err)
			}
			had := f.readAbs(sibling, "cgroup.controllers")
			if !strings.Contains(had, "cpu") {
				t.Fatalf("fixture: the sibling got %q, want cpu among them", had)
			}
			if _, err := u.Remove(parent); err != nil {
				t.Fatal(err)
			}
			if got := f.readAbs(sibling, "cgroup.controllers"); got != had {
				t.Errorf("the sibling's controllers went from %q to %q with the session", had, got)
			}
			if !exists(filepath.Join(sibling, "cpu.max")) {
				t.Errorf("the sibling lost cpu.max")
			}
		})
	}
}

// A bus that refuses (polkit: interactive authentication required) fails
// the parent with the reason, and changes nothing: no cgroup made, no
// controller switched on.
func TestScopeRefusedByTheBusChangesNothing(t *testing.T) {
	f := debianTree(t)
	u := f.open(4242, session, "/")
	u.systemd, u.unit = &fixtureSystemd{f: f, refuse: errors.New("Interactive authentication required.")}, ScopeUnit("4242-1")
	before := f.subtreeControls("")
	_, _, err := u.NewParent("")
	if err == nil || !strings.Contains(err.Error(), "Interactive authentication required") || !strings.Contains(err.Error(), "without cgroup steps") {
		t.Fatalf("NewParent: %v, want the bus's refusal and what it means", err)
	}
	if after := f.subtreeControls(""); len(after) != len(before) {
		t.Errorf("cgroups changed: %d before, %d after", len(before), len(after))
	}
}

// In a container whose cgroup namespace shows its own cgroup as the top,
// holding the container's processes, there is no legal place: the error
// says so, and why, rather than failing later.
func TestPrivateCgroupNamespaceWithProcessesAtItsTopSaysThereIsNoLegalPlace(t *testing.T) {
	f := newV2Fixture(t, "", nil)
	if err := os.WriteFile(filepath.Join(f.root, "cgroup.type"), []byte("domain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.root, "cgroup.procs"), []byte("1\n4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := f.open(4242, "/", "/")
	_, err := u.Place("")
	if !errors.Is(err, ErrNoPlace) || !strings.Contains(err.Error(), "container's own") || !strings.Contains(err.Error(), "without cgroup steps") {
		t.Fatalf("Place: %v, want no legal place, said plainly", err)
	}
}
