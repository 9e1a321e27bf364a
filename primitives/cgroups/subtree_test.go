package cgroups

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// debianTree is a stock Debian 12 host under systemd: the root switches
// cpuset cpu io memory pids on, the user slices only memory and pids, and
// the session's scope holds the learner's shell.
func debianTree(t *testing.T) *v2Fixture {
	t.Helper()
	f := newV2Fixture(t, "+cpuset +cpu +io +memory +pids", systemdTree())
	// Children first: a controller cannot go off while a child has it on.
	for _, d := range []string{"user.slice/user-1000.slice", "user.slice"} {
		f.write(filepath.Join(f.root, d), "cgroup.subtree_control", "-cpuset -cpu -io")
	}
	if got := f.read("user.slice", "cgroup.subtree_control"); got != "memory pids" {
		t.Fatalf("fixture: user.slice subtree_control = %q, want memory pids", got)
	}
	return f
}

func TestUnifiedParentSwitchesCPUOnInEveryCgroupOnTheWayDown(t *testing.T) {
	f := debianTree(t)
	u := f.open(4242, session, "/")
	pl, err := u.Place("")
	if err != nil {
		t.Fatal(err)
	}
	if pl.Rule != "nearest" || pl.Dirs[0].Cgroup != "/user.slice/user-1000.slice" || !slices.Equal(pl.Controllers, []string{CPU, Memory, Pids}) {
		t.Fatalf("placement = %s at %s with %v, want nearest at /user.slice/user-1000.slice with cpu memory pids", pl.Rule, pl.Dirs[0].Cgroup, pl.Controllers)
	}
	parent, s, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"user.slice", "user.slice/user-1000.slice", "user.slice/user-1000.slice/stepbox-4242-0"} {
		if got := f.read(d, "cgroup.subtree_control"); got != "cpu memory pids" {
			t.Errorf("%s subtree_control = %q, want cpu memory pids", d, got)
		}
	}
	wantEnabled := []Dir{
		{Path: filepath.Join(f.root, "user.slice"), Cgroup: "/user.slice", Controllers: []string{CPU}},
		{Path: filepath.Join(f.root, "user.slice/user-1000.slice"), Cgroup: "/user.slice/user-1000.slice", Controllers: []string{CPU}},
	}
	if !slices.EqualFunc(parent.Enabled, wantEnabled, func(a, b Dir) bool {
		return a.Path == b.Path && a.Cgroup == b.Cgroup && slices.Equal(a.Controllers, b.Controllers)
	}) {
		t.Errorf("Enabled = %+v, want cpu switched on in user.slice, then user-1000.slice", parent.Enabled)
	}
	notes := strings.Join(s.Notes, "\n")
	for _, want := range []string{"cpu in /user.slice", "session's lifetime", "made there since", "delegated scope"} {
		if !strings.Contains(notes, want) {
			t.Errorf("step notes do not say %q:\n%s", want, notes)
		}
	}
	if !strings.Contains(s.Undo, "echo -cpu > "+filepath.Join(f.root, "user.slice/user-1000.slice/cgroup.subtree_control")) {
		t.Errorf("undo %q does not switch cpu off again", s.Undo)
	}
	box, _, err := u.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := u.Limit(box, CPU, "20%"); err != nil {
		t.Fatalf("cpu limit on the box: %v", err)
	}
	rs, err := u.Remove(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"user.slice", "user.slice/user-1000.slice"} {
		if got := f.read(d, "cgroup.subtree_control"); got != "memory pids" {
			t.Errorf("%s subtree_control after Remove = %q, want memory pids as before", d, got)
		}
	}
	var offs []string
	for _, c := range rs.Calls {
		if strings.HasPrefix(c.Syscall, "openat(") && strings.Contains(c.Syscall, "subtree_control") {
			offs = append(offs, strings.TrimPrefix(filepath.Dir(strings.Trim(strings.Fields(c.Syscall)[1], `",`)), f.root))
		}
	}
	if want := []string{"/user.slice/user-1000.slice", "/user.slice"}; !slices.Equal(offs, want) {
		t.Errorf("Remove switched off in %v, want deepest first %v", offs, want)
	}
}

func TestUnifiedParentLeavesControllersThatWereOnAlone(t *testing.T) {
	f := debianTree(t)
	f.write(filepath.Join(f.root, "user.slice"), "cgroup.subtree_control", "+cpu")
	u := f.open(4242, session, "/")
	parent, _, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	if len(parent.Enabled) != 1 || parent.Enabled[0].Cgroup != "/user.slice/user-1000.slice" {
		t.Errorf("Enabled = %+v, want only user-1000.slice: user.slice had cpu on", parent.Enabled)
	}
	if _, err := u.Remove(parent); err != nil {
		t.Fatal(err)
	}
	if got := f.read("user.slice", "cgroup.subtree_control"); got != "cpu memory pids" {
		t.Errorf("user.slice subtree_control = %q, want cpu left on as it was", got)
	}
	if got := f.read("user.slice/user-1000.slice", "cgroup.subtree_control"); got != "memory pids" {
		t.Errorf("user-1000.slice subtree_control = %q, want memory pids", got)
	}
}

// A cgroup holding processes above the session cannot pass controllers
// down: the parent goes above it, or, when --cgroup-parent names a place
// below it, the step says what the parent lacks and why.
func TestUnifiedParentGoesAboveACgroupThatHoldsProcesses(t *testing.T) {
	tree := map[string][]int{
		"user.slice":                               nil,
		"user.slice/odd.scope":                     {500},
		"user.slice/odd.scope/inner":               nil,
		"user.slice/odd.scope/inner/session.scope": {4242},
	}
	f := newV2Fixture(t, "+cpu +memory +pids", tree)
	u := f.open(4242, "/user.slice/odd.scope/inner/session.scope", "/")
	pl, err := u.Place("")
	if err != nil {
		t.Fatal(err)
	}
	if pl.Dirs[0].Cgroup != "/user.slice" || !strings.Contains(pl.Reason, "/user.slice/odd.scope above it holds 1 process of its own") {
		t.Fatalf("placement at %s (%s), want /user.slice, above the cgroup with processes", pl.Dirs[0].Cgroup, pl.Reason)
	}
	over, err := u.Place("/user.slice/odd.scope/inner")
	if err != nil {
		t.Fatal(err)
	}
	if len(over.Controllers) != 0 || len(over.Enable) != 0 || !strings.Contains(over.Reason, "cpu memory pids cannot reach the parent") {
		t.Errorf("override below it: controllers %v, enable %v, reason %q", over.Controllers, over.Enable, over.Reason)
	}
	parent, _, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	if parent.Dirs[0].Cgroup != "/user.slice/stepbox-4242-0" || !slices.Equal(parent.Dirs[0].Controllers, []string{CPU, Memory, Pids}) {
		t.Errorf("parent %s with %v", parent.Dirs[0].Cgroup, parent.Dirs[0].Controllers)
	}
	if got := f.read("user.slice/odd.scope", "cgroup.subtree_control"); got != "" {
		t.Errorf("odd.scope subtree_control = %q, want untouched", got)
	}
	if _, err := u.Remove(parent); err != nil {
		t.Fatal(err)
	}
}
