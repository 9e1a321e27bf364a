package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/procfs"
)

// systemdTree is a systemd host's v2 layout: processes only in leaves
// (.scope, .service), slices in between enabling their controllers.
func systemdTree() map[string][]int {
	return map[string][]int{
		"init.scope":                 {1},
		"system.slice":               nil,
		"system.slice/ssh.service":   {812},
		"user.slice":                 nil,
		"user.slice/user-1000.slice": nil,
		"user.slice/user-1000.slice/session-3.scope": {4242, 4250},
	}
}

const session = "/user.slice/user-1000.slice/session-3.scope"

func TestUnifiedParentGoesUnderRootSessionAndEnablesControllersOnTheWayDown(t *testing.T) {
	f := newV2Fixture(t, "", nil)
	if err := os.WriteFile(filepath.Join(f.root, "cgroup.procs"), []byte("1\n4242\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u := f.open(4242, "/", "/")
	pl, err := u.Place("")
	if err != nil {
		t.Fatal(err)
	}
	if pl.Rule != "session" || pl.Dirs[0].Path != f.root {
		t.Fatalf("placement = %s at %s, want session at the root", pl.Rule, pl.Dirs[0].Path)
	}
	parent, s, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.read("", "cgroup.subtree_control"); got != "cpu memory pids" {
		t.Errorf("root cgroup.subtree_control = %q, want cpu memory pids", got)
	}
	if got := f.read("stepbox-4242-0", "cgroup.subtree_control"); got != "cpu memory pids" {
		t.Errorf("parent cgroup.subtree_control = %q, want cpu memory pids", got)
	}
	if len(parent.Enabled) != 1 || !slices.Equal(parent.Enabled[0].Controllers, []string{"cpu", "memory", "pids"}) {
		t.Errorf("parent.Enabled = %+v, want the three controllers switched on at the root", parent.Enabled)
	}
	if !slices.Contains(s.Shell, "echo '+cpu +memory +pids' > "+filepath.Join(f.root, "cgroup.subtree_control")) {
		t.Errorf("step shell = %q, want the subtree_control write", s.Shell)
	}
	box, _, err := u.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.read("stepbox-4242-0/"+box.Name, "cgroup.controllers"); got != "cpu memory pids" {
		t.Errorf("box cgroup.controllers = %q, want cpu memory pids", got)
	}
	if _, err := u.Remove(parent); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Join(f.root, "stepbox-4242-0")) {
		t.Error("parent still exists after Remove")
	}
	if got := f.read("", "cgroup.subtree_control"); got != "" {
		t.Errorf("root cgroup.subtree_control after Remove = %q, want it as it was (empty)", got)
	}
}

func TestUnifiedParentGoesToNearestCgroupWithoutProcesses(t *testing.T) {
	f := newV2Fixture(t, "+cpu +io +memory +pids", systemdTree())
	u := f.open(4242, session, "/")
	parent, s, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(f.root, "user.slice/user-1000.slice/stepbox-4242-0")
	if parent.Dirs[0].Path != want || parent.Dirs[0].Cgroup != "/user.slice/user-1000.slice/stepbox-4242-0" {
		t.Fatalf("parent at %s (%s), want %s", parent.Dirs[0].Path, parent.Dirs[0].Cgroup, want)
	}
	if !strings.Contains(s.Summary, "no-internal-processes") || !strings.Contains(s.Summary, "holds 2 processes") {
		t.Errorf("summary %q does not explain the rule", s.Summary)
	}
	if parent.Enabled != nil {
		t.Errorf("Enabled = %+v; the slice had the controllers on already", parent.Enabled)
	}
	if got := f.read("user.slice/user-1000.slice/session-3.scope", "cgroup.procs"); got != "4242\n4250" {
		t.Errorf("session's cgroup.procs = %q: the session's processes must stay where they are", got)
	}
	t.Cleanup(func() { _, _ = u.Remove(parent) })
}

func TestUnifiedOverridePlacesParentAndRefusesCgroupsWithProcesses(t *testing.T) {
	f := newV2Fixture(t, "+cpu +memory +pids", systemdTree())
	u := f.open(4242, session, "/")
	parent, _, err := u.NewParent("/system.slice")
	if err != nil {
		t.Fatal(err)
	}
	if parent.Dirs[0].Cgroup != "/system.slice/stepbox-4242-0" {
		t.Errorf("parent = %s, want /system.slice/stepbox-4242-0", parent.Dirs[0].Cgroup)
	}
	_, _, err = u.NewParent("/system.slice/ssh.service")
	if err == nil || !strings.Contains(err.Error(), "no-internal-processes") {
		t.Errorf("override into a cgroup with processes: err = %v, want the rule explained", err)
	}
	if exists(filepath.Join(f.root, "system.slice/ssh.service/stepbox-4242-0")) {
		t.Error("a refused override still created a cgroup")
	}
	if _, err := u.Remove(parent); err != nil {
		t.Fatal(err)
	}
}

func TestUnifiedContainerWithProcessesAtItsTopHasNoLegalPlace(t *testing.T) {
	for _, view := range []struct{ name, cgroup, mountRoot string }{
		{"cgroup namespace", "/", "/"},
		{"bind mount of the host's subtree", "/docker/0123456789ab", "/docker/0123456789ab"},
	} {
		t.Run(view.name, func(t *testing.T) {
			f := newV2Fixture(t, "", nil)
			// The top of a container's mount is its own cgroup, not the
			// host's root: it has cgroup.type, and the container's processes.
			if err := os.WriteFile(filepath.Join(f.root, "cgroup.type"), []byte("domain\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.root, "cgroup.procs"), []byte("1\n4242\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			u := f.open(4242, view.cgroup, view.mountRoot)
			_, _, err := u.NewParent("")
			if err == nil || !strings.Contains(err.Error(), "--cgroup-parent") || !strings.Contains(err.Error(), "no-internal-processes") {
				t.Fatalf("NewParent: err = %v, want the rule and --cgroup-parent explained", err)
			}
			if kids, _ := subdirs(f.root); len(kids) != 0 {
				t.Errorf("a refused NewParent left %v", kids)
			}
			if got := f.read("", "cgroup.subtree_control"); got != "" {
				t.Errorf("cgroup.subtree_control = %q after a refused NewParent, want it untouched", got)
			}
		})
	}
}

func TestUnifiedAttachOnlyToLeaves(t *testing.T) {
	f := newV2Fixture(t, "+cpu +memory +pids", systemdTree())
	u := f.open(4242, session, "/")
	parent, _, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	box, _, err := u.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Attach(parent, 4250); err == nil || !strings.Contains(err.Error(), "leaf") {
		t.Errorf("attach to the parent: err = %v, want a refusal naming leaves", err)
	}
	if pids, _ := u.Procs(parent); len(pids) != 0 {
		t.Errorf("parent holds %v after a refused attach", pids)
	}
	s, err := u.Attach(box, 4250)
	if err != nil {
		t.Fatal(err)
	}
	if pids, _ := u.Procs(box); !slices.Equal(pids, []int{4250}) {
		t.Errorf("box procs = %v, want [4250]", pids)
	}
	if got := f.read(strings.TrimPrefix(session, "/"), "cgroup.procs"); got != "4242" {
		t.Errorf("session procs = %q, want 4250 moved out", got)
	}
	wantShell := "echo 4250 > " + filepath.Join(box.Dirs[0].Path, "cgroup.procs")
	if !slices.Contains(s.Shell, wantShell) {
		t.Errorf("step shell = %q, want %q", s.Shell, wantShell)
	}
	if _, _, err := u.Create(box, "nested", ""); err == nil {
		// A cgroup with processes gets no children with controllers.
		t.Error("Create under a cgroup with processes succeeded")
	}
	if _, err := u.Attach(box, 0); err == nil {
		t.Error("attach of PID 0 succeeded")
	}
	if _, err := u.Attach(nil, 4250); !errors.Is(err, ErrNoGroup) {
		t.Errorf("attach with no cgroup: err = %v, want ErrNoGroup", err)
	}
	f.write(filepath.Join(f.root, session), "cgroup.procs", "4250")
	if _, err := u.Remove(parent); err != nil {
		t.Fatal(err)
	}
}

// v2Box makes stepbox's parent and a box "web" on a systemd fixture host
// whose root enables rootEnabled.
func v2Box(t testing.TB, rootEnabled string) (*v2Fixture, *unified, *Group, *Group) {
	t.Helper()
	f := newV2Fixture(t, rootEnabled, systemdTree())
	u := f.open(4242, session, "/")
	parent, _, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	box, _, err := u.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := u.Remove(parent); err != nil {
			t.Error(err)
		}
	})
	return f, u, parent, box
}

func TestUnifiedLimitWritesTheV2Files(t *testing.T) {
	f, u, _, box := v2Box(t, "+cpu +memory +pids")
	rel, _ := filepath.Rel(f.root, box.Dirs[0].Path)
	for _, c := range []struct {
		kind, value string
		files       map[string]string
	}{
		{"memory", "64M", map[string]string{"memory.max": "67108864", "memory.swap.max": "0"}},
		{"memory", "max", map[string]string{"memory.max": "max", "memory.swap.max": "max"}},
		{"pids", "20", map[string]string{"pids.max": "20"}},
		{"cpu", "50%", map[string]string{"cpu.max": "50000 100000"}},
		{"cpu", "150%", map[string]string{"cpu.max": "150000 100000"}},
		{"cpu", "max", map[string]string{"cpu.max": "max 100000"}},
	} {
		if c.value == "150%" && runtime.NumCPU() < 2 {
			continue // more than one CPU's worth needs a second CPU
		}
		set, s, err := u.Limit(box, c.kind, c.value)
		if err != nil {
			t.Fatalf("limit %s %s: %v", c.kind, c.value, err)
		}
		if len(set) != len(c.files) {
			t.Errorf("limit %s %s wrote %+v, want %v", c.kind, c.value, set, c.files)
		}
		for file, want := range c.files {
			if got := f.read(rel, file); got != want {
				t.Errorf("limit %s %s: %s = %q, want %q", c.kind, c.value, file, got, want)
			}
		}
		if len(s.Calls) != 3*len(c.files) {
			t.Errorf("limit %s %s recorded %d calls, want openat+write+close per file", c.kind, c.value, len(s.Calls))
		}
	}
}

// A kernel whose cpu controller is bound to a v1 hierarchy offers no cpu
// on v2: the box cannot have it, and the error names what there is.
func TestUnifiedLimitNamesTheControllersTheHostOffers(t *testing.T) {
	f := newV2Fixture(t, "+memory +pids", systemdTree())
	if err := f.set(f.root, "cgroup.controllers", "cpuset io memory hugetlb pids rdma misc", false); err != nil {
		t.Fatal(err)
	}
	u := f.open(4242, session, "/")
	parent, _, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = u.Remove(parent) })
	box, _, err := u.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	before := f.read("", "cgroup.subtree_control")
	_, _, err = u.Limit(box, "cpu", "20%")
	if err == nil || !strings.Contains(err.Error(), "no cpu controller") || !strings.Contains(err.Error(), "it has: memory, pids; the host offers: cpuset, io, memory") {
		t.Fatalf("cpu limit without cpu: err = %v, want the available controllers named", err)
	}
	if f.read("", "cgroup.subtree_control") != before {
		t.Error("a refused limit changed the root's subtree_control")
	}
}

func TestUnifiedBadInputWritesNothing(t *testing.T) {
	f, u, _, box := v2Box(t, "+cpu +memory +pids")
	rel, _ := filepath.Rel(f.root, box.Dirs[0].Path)
	for _, c := range []struct{ file, value, want string }{
		{"../cgroup.procs", "1", "not a path"},
		{"/etc/passwd", "x", "not a path"},
		{"memory.maximum", "1G", "no such control file"},
		{"memory.current", "0", "read-only"},
	} {
		if _, err := u.Set(box, c.file, c.value); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("set %s %s: err = %v, want %q", c.file, c.value, err, c.want)
		}
	}
	for _, c := range [][2]string{{"memory", "64MB"}, {"memory", "50%"}, {"pids", "0"}, {"pids", "20M"}, {"cpu", "50"}, {"cpu", "0%"}, {"io", "10M"}} {
		if _, _, err := u.Limit(box, c[0], c[1]); !errors.Is(err, ErrBadLimit) {
			t.Errorf("limit %s %s: err = %v, want ErrBadLimit", c[0], c[1], err)
		}
	}
	for file, want := range map[string]string{"memory.max": "max", "pids.max": "max", "cpu.max": "max 100000", "cgroup.procs": ""} {
		if got := f.read(rel, file); got != want {
			t.Errorf("%s = %q after refused input, want %q untouched", file, got, want)
		}
	}
	if got := f.read(filepath.Dir(rel), "cgroup.procs"); got != "" {
		t.Errorf("parent's cgroup.procs = %q after set ../cgroup.procs", got)
	}
}

func TestUnifiedStatsReadsTheV2Files(t *testing.T) {
	f, u, _, box := v2Box(t, "+cpu +memory +pids")
	rel, _ := filepath.Rel(f.root, box.Dirs[0].Path)
	for file, text := range map[string]string{
		"memory.current": "33550336\n",
		"memory.max":     "33554432\n",
		"memory.events":  "low 0\nhigh 0\nmax 412\noom 3\noom_kill 2\noom_group_kill 0\n",
		"pids.current":   "20\n",
		"pids.max":       "20\n",
		"pids.events":    "max 37\n",
		"cpu.stat":       "usage_usec 204733\nuser_usec 204000\nsystem_usec 733\nnr_periods 10\nnr_throttled 9\nthrottled_usec 712345\nnr_bursts 0\nburst_usec 0\n",
		"cpu.max":        "20000 100000\n",
	} {
		if err := f.set(filepath.Join(f.root, rel), file, text, false); err != nil {
			t.Fatal(err)
		}
	}
	st, err := u.Stats(box)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{
		Memory: &MemoryStats{Current: 33550336, Max: 33554432, LimitHits: 412, OOM: 3, OOMKill: 2},
		Pids:   &PidsStats{Current: 20, Max: 20, Refused: 37},
		CPU:    &CPUStats{UsageUsec: 204733, Periods: 10, Throttled: 9, ThrottledUsec: 712345, QuotaUsec: 20000, PeriodUsec: 100000},
	}
	if *st.Memory != *want.Memory || *st.Pids != *want.Pids || *st.CPU != *want.CPU {
		t.Errorf("stats = %+v %+v %+v, want %+v %+v %+v", *st.Memory, *st.Pids, *st.CPU, *want.Memory, *want.Pids, *want.CPU)
	}
}

func TestUnifiedRemoveTakesChildrenFirst(t *testing.T) {
	f, u, parent, box := v2Box(t, "+cpu +memory +pids")
	if err := f.Mkdir(filepath.Join(box.Dirs[0].Path, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := u.Remove(parent)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, c := range s.Calls {
		if strings.HasPrefix(c.Syscall, "rmdir(") {
			order = append(order, filepath.Base(strings.Trim(strings.TrimPrefix(c.Syscall, "rmdir("), `")`)))
		}
	}
	if want := []string{"inner", box.Name, "stepbox-4242-0"}; !slices.Equal(order, want) {
		t.Errorf("rmdir order = %v, want %v", order, want)
	}
	if exists(parent.Dirs[0].Path) {
		t.Error("parent left behind")
	}
}

func TestUnifiedSnapshotShowsTreeAndMembership(t *testing.T) {
	f, u, parent, box := v2Box(t, "+cpu +memory +pids")
	f.write(box.Dirs[0].Path, "cgroup.procs", "4250")
	t.Cleanup(func() { f.write(filepath.Join(f.root, session), "cgroup.procs", "4250") })
	snap, err := TakeSnapshot(u, parent, Box{Name: "web", Group: box}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Parent.Name != "stepbox-4242-0" || len(snap.Parent.Children) != 1 {
		t.Fatalf("tree = %+v, want the parent with one box", snap.Parent)
	}
	web := snap.Parent.Children[0]
	if web.Name != box.Name || !slices.Equal(web.Procs, []int{4250}) || web.Stats.Memory == nil || web.CPUs != Unknown {
		t.Errorf("box node = %+v", web)
	}
}

func TestSnapshotTurnsCPUTimeIntoARate(t *testing.T) {
	f, u, parent, box := v2Box(t, "+cpu +memory +pids")
	prev, err := TakeSnapshot(u, parent, Box{Name: "web", Group: box}, nil)
	if err != nil {
		t.Fatal(err)
	}
	prev.Taken = prev.Taken.Add(-2 * time.Second)
	stat := "usage_usec 1000000\nuser_usec 1000000\nsystem_usec 0\nnr_periods 20\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n"
	if err := f.set(box.Dirs[0].Path, "cpu.stat", stat, false); err != nil {
		t.Fatal(err)
	}
	snap, err := TakeSnapshot(u, parent, Box{Name: "web", Group: box}, &prev)
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.Parent.Children[0].CPUs; got < 0.45 || got > 0.5 {
		t.Errorf("1s of CPU in about 2s of wall time = %.3f CPUs, want about 0.5", got)
	}
}

func BenchmarkStatsOnAV2Fixture(b *testing.B) {
	_, u, _, box := v2Box(b, "+cpu +memory +pids")
	for b.Loop() {
		if _, err := u.Stats(box); err != nil {
			b.Fatal(err)
		}
	}
}

// A box with the rights to mkdir in its cgroups can make thousands of
// them, as wide or as deep as it likes (ut29 F7): a snapshot reads a
// bounded part of the tree, counts what it left, and never leaves out
// the box's own cgroup, whatever siblings sort before it.
func TestSnapshotReadsABoundedTreeAndKeepsTheBoxsCgroup(t *testing.T) {
	f, u, parent, box := v2Box(t, "+cpu +memory +pids")
	wide := TreeChildren + 40
	for i := range wide {
		if err := f.Mkdir(filepath.Join(parent.Dirs[0].Path, fmt.Sprintf("a%04d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := box.Dirs[0].Path
	for range TreeDepth + 5 {
		d = filepath.Join(d, "n")
		if err := f.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range wide {
		if err := f.Mkdir(filepath.Join(box.Dirs[0].Path, fmt.Sprintf("m%04d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := TakeSnapshot(u, parent, Box{Name: "web", Group: box}, nil)
	if err != nil {
		t.Fatal(err)
	}
	read, unread, deepest := 0, 0, 0
	var walk func(n Node, depth int)
	walk = func(n Node, depth int) {
		read++
		unread += n.Unread
		deepest = max(deepest, depth)
		for _, c := range n.Children {
			walk(c, depth+1)
		}
	}
	walk(snap.Parent, 0)
	if read > TreeNodes+1 || deepest > TreeDepth {
		t.Errorf("the snapshot read %d cgroups, %d levels deep; want at most %d and %d", read, deepest, TreeNodes+1, TreeDepth)
	}
	if !slices.ContainsFunc(snap.Parent.Children, func(n Node) bool { return n.Name == box.Name }) {
		t.Errorf("the box's cgroup %s is not in the tree among %d siblings the box made", box.Name, wide)
	}
	if snap.Parent.Unread != wide+1-TreeChildren-1 && snap.Parent.Unread != wide+1-TreeChildren {
		t.Errorf("the parent counts %d children unread, want those past the first %d of %d", snap.Parent.Unread, TreeChildren, wide+1)
	}
	if read+unread < 2*wide {
		t.Errorf("read %d + unread %d cgroups: fewer than the %d the box made", read, unread, 2*wide)
	}
}

// V2MountOptions names the hierarchy's own options, sorted, without the
// mount's rw/ro, from the first cgroup2 mount; "" with none.
func TestV2MountOptions(t *testing.T) {
	m := func(fstype string, opts map[string]string) *procfs.MountInfo {
		return &procfs.MountInfo{FSType: fstype, SuperOptions: opts}
	}
	for _, c := range []struct {
		mounts []*procfs.MountInfo
		want   string
	}{
		{nil, ""},
		{[]*procfs.MountInfo{m("cgroup", map[string]string{"rw": "", "cpu": ""})}, ""},
		{[]*procfs.MountInfo{m("cgroup2", map[string]string{"rw": ""})}, ""},
		{[]*procfs.MountInfo{m("tmpfs", map[string]string{"size": "1k"}), m("cgroup2", map[string]string{"rw": "", "nsdelegate": "", "memory_recursiveprot": ""})}, "memory_recursiveprot,nsdelegate"},
		{[]*procfs.MountInfo{m("cgroup2", map[string]string{"ro": "", "nsdelegate": ""}), m("cgroup2", map[string]string{"rw": ""})}, "nsdelegate"},
	} {
		if got := V2MountOptions(c.mounts); got != c.want {
			t.Errorf("V2MountOptions(%v) = %q, want %q", c.mounts, got, c.want)
		}
	}
}
