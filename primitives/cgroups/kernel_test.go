package cgroups

import (
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests run on this machine's real cgroups, as root. Everything they
// make is stepbox-<test PID> under the test's own cgroup in each hierarchy.

// v1: under the session's own cgroup in every hierarchy. v2: under it if
// it holds no processes (or is the root), else under the nearest cgroup
// above it without processes, with memory, pids and cpu switched on all
// the way down, and switched off again by Remove.
func TestNewParentGoesUnderTheSessionsCgroupInEveryHierarchy(t *testing.T) {
	h := openHost(t)
	unchangedAfterRemove(t)
	parent := newSession(t, h)
	self := memberOf(t, os.Getpid())
	for _, d := range parent.Dirs {
		at := self[d.Hierarchy]
		if h.Version() == 2 {
			at = nearestWithoutProcesses(t, at)
		}
		want := path.Join(at, parent.Name)
		if d.Cgroup != want || !exists(d.Path) {
			t.Errorf("%s: parent at %s (%s), want cgroup %s to exist", d.Hierarchy, d.Path, d.Cgroup, want)
		}
	}
	want := len(parent.Dirs) + len(parent.Track)
	if parent.Scope != "" {
		want++ // the delegated scope, stepbox-PID-START.scope, is stepbox's too
	}
	if found := findCgroups(t, "stepbox-"+strconv.Itoa(os.Getpid())); len(found) != want {
		t.Errorf("find -name '*stepbox-PID*' = %v, want one per hierarchy (%d), one per tracking tree (%d) and the scope systemd made, if any", found, len(parent.Dirs), len(parent.Track))
	}
	if h.Version() == 1 {
		for _, c := range []string{Memory, Pids, CPU, "cpuacct"} {
			if _, ok := parent.dir(c); !ok {
				t.Errorf("parent has no %s hierarchy", c)
			}
		}
		return
	}
	on, err := subtree(kernelFS{}, parent.Dirs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range v2Wanted {
		if slices.Contains(h.Controllers(), c) && !slices.Contains(on, c) {
			t.Errorf("the parent's cgroup.subtree_control is %q: %s is offered at the root but did not reach it", on, c)
		}
	}
}

// unchangedAfterRemove checks, once every cleanup registered after it has
// run, that every cgroup.subtree_control of the host's is as it was: what
// NewParent switched on above the parent, Remove switched off.
func unchangedAfterRemove(t *testing.T) {
	t.Helper()
	before := subtreeControls(t)
	t.Cleanup(func() {
		after := subtreeControls(t)
		for dir, was := range before {
			if after[dir] != was {
				t.Errorf("%s/cgroup.subtree_control = %q after Remove, was %q", dir, after[dir], was)
			}
		}
	})
}

// nearestWithoutProcesses is the v2 rule, read off the live tree: cgroup
// p if it holds no processes or is the root, else the nearest above it.
func nearestWithoutProcesses(t *testing.T, p string) string {
	t.Helper()
	for ; ; p = path.Dir(p) {
		dir := filepath.Join(DefaultRoot, p)
		pids, err := readPIDs(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 0 || p == "/" {
			return p
		}
	}
}

// subtreeControls reads every v2 cgroup.subtree_control outside stepbox's
// own cgroups (none on a v1 host).
func subtreeControls(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	_ = filepath.WalkDir(DefaultRoot, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		if strings.HasPrefix(e.Name(), ParentPrefix) {
			return filepath.SkipDir
		}
		if v, err := readFile(filepath.Join(p, "cgroup.subtree_control")); err == nil {
			out[p] = v
		}
		return nil
	})
	return out
}

func TestFindByShortIDShowsTheBoxsHostPIDInEachCgroup(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(box.ID) != 12 || !strings.HasPrefix(box.Name, "web-") || !strings.HasSuffix(box.Name, box.ID) {
		t.Fatalf("box cgroup %q id %q, want web-<12 hex>", box.Name, box.ID)
	}
	b := startInBox(t, h, box, "echo ready; exec sleep 30")
	b.line(t)
	pid := b.cmd.Process.Pid
	found := findCgroups(t, box.ID)
	if len(found) != len(box.Dirs) {
		t.Fatalf("find -name '*%s*' = %v, want %d cgroups", box.ID, found, len(box.Dirs))
	}
	for _, dir := range found {
		for _, f := range []string{"cgroup.procs", "tasks"} {
			if h.Version() == 2 && f == "tasks" {
				continue
			}
			pids, err := readPIDs(filepath.Join(dir, f))
			if err != nil || !slices.Equal(pids, []int{pid}) {
				t.Errorf("%s/%s = %v (%v), want [%d]", dir, f, pids, err, pid)
			}
		}
	}
	where := memberOf(t, pid)
	for _, d := range box.Dirs {
		if where[d.Hierarchy] != d.Cgroup {
			t.Errorf("/proc/%d/cgroup puts it in %s:%s, want %s", pid, d.Hierarchy, where[d.Hierarchy], d.Cgroup)
		}
	}
	snap, err := TakeSnapshot(h, parent, Box{Name: "web", Group: box, PID: pid}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Parent.Children) != 1 || !slices.Equal(snap.Parent.Children[0].Procs, []int{pid}) || len(snap.HostView) == 0 {
		t.Errorf("snapshot = %+v, want the box holding %d", snap.Parent, pid)
	}
}

func TestAttachedProcessesChildrenStartInside(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	b := startInBox(t, h, box, "sleep 30 & echo $!; wait")
	child := atoi(t, b.line(t))
	where := memberOf(t, child)
	for _, d := range box.Dirs {
		if where[d.Hierarchy] != d.Cgroup {
			t.Errorf("child %d is in %s:%s, want %s", child, d.Hierarchy, where[d.Hierarchy], d.Cgroup)
		}
	}
	if procs, _ := h.Procs(box); !slices.Contains(procs, child) || !slices.Contains(procs, b.cmd.Process.Pid) {
		t.Errorf("Procs = %v, want the shell and its child %d", procs, child)
	}
}

func TestPidsLimitStopsAForkLoop(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Limit(box, Pids, "20"); err != nil {
		t.Fatal(err)
	}
	b := startInBox(t, h, box, "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done; echo forked $i; wait")
	eventually(t, "a fork is refused", func() bool {
		st, err := h.Stats(box)
		return err == nil && st.Pids.Refused > 0
	})
	st, err := h.Stats(box)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pids.Max != 20 || st.Pids.Current > 20 {
		t.Errorf("pids %d of max %d, want at most 20", st.Pids.Current, st.Pids.Max)
	}
	eventually(t, "the shell reports the failed fork", func() bool {
		return strings.Contains(strings.ToLower(b.stderr.String()), "fork")
	})
}

func TestMemoryHogIsOOMKilled(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Limit(box, Memory, "32M"); err != nil {
		t.Fatal(err)
	}
	// tail keeps a line whole in memory, and /dev/zero has no newline.
	// The hog and its pipeline volunteer as the OOM killer's victims: on a
	// slow (emulated) machine a second kill can come before the first
	// victim's memory is back, and it must not take the shell that
	// reports. (Lowering the reporter's score instead would need
	// CAP_SYS_RESOURCE, which a sandboxed root lacks; raising needs none.)
	b := startInBox(t, h, box, "(echo 1000 >/proc/self/oom_score_adj; head -c 256M /dev/zero | tail >/dev/null); echo status $?")
	if got := b.line(t); got != "status 137" {
		t.Errorf("hog ended with %q, want status 137 (SIGKILL)", got)
	}
	st, err := h.Stats(box)
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.Max != 32<<20 || st.Memory.OOMKill < 1 {
		t.Errorf("memory max %d oom_kill %d, want 32M and at least one kill", st.Memory.Max, st.Memory.OOMKill)
	}
}

func TestCPUQuotaThrottlesASpinner(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Limit(box, CPU, "20%"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	b := startInBox(t, h, box, "timeout 1 sh -c 'while :; do :; done'; echo done")
	b.line(t)
	wall := time.Since(start)
	st, err := h.Stats(box)
	if err != nil {
		t.Fatal(err)
	}
	if st.CPU.QuotaUsec != 20000 || st.CPU.PeriodUsec != 100000 {
		t.Errorf("quota %d/%d, want 20000/100000", st.CPU.QuotaUsec, st.CPU.PeriodUsec)
	}
	if st.CPU.Throttled == 0 || st.CPU.ThrottledUsec == 0 {
		t.Errorf("nr_throttled %d throttled_usec %d, want throttling counted", st.CPU.Throttled, st.CPU.ThrottledUsec)
	}
	// 20% of the wall time, plus a period of slack for the shells around it.
	if most := wall.Microseconds()/5 + 100000; st.CPU.UsageUsec > most {
		t.Errorf("used %dus of CPU in %v, want at most %dus", st.CPU.UsageUsec, wall, most)
	}
}

func TestLimitWritesWhereTheKernelReads(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][2]string{ // kind → v1 file, v2 file
		Memory: {"memory.limit_in_bytes", "memory.max"},
		Pids:   {"pids.max", "pids.max"},
		CPU:    {"cpu.cfs_quota_us", "cpu.max"},
	}
	for _, c := range []struct{ kind, value, v1, v2 string }{
		{Memory, "64M", "67108864", "67108864"},
		{Memory, "128M", "134217728", "134217728"},
		{Memory, "32M", "33554432", "33554432"},
		{Pids, "20", "20", "20"},
		{CPU, "50%", "50000", "50000 100000"},
		{CPU, "max", "-1", "max 100000"},
		{Pids, "max", "max", "max"},
	} {
		set, _, err := h.Limit(box, c.kind, c.value)
		if err != nil {
			t.Fatalf("limit %s %s: %v", c.kind, c.value, err)
		}
		file, want := files[c.kind][0], c.v1
		if h.Version() == 2 {
			file, want = files[c.kind][1], c.v2
		}
		d, _ := box.dir(c.kind)
		got, err := readFile(filepath.Join(d.Path, file))
		if err != nil || got != want {
			t.Errorf("limit %s %s: %s = %q (%v), want %q", c.kind, c.value, file, got, err, want)
		}
		if !slices.ContainsFunc(set, func(s Setting) bool { return s.File == filepath.Join(d.Path, file) }) {
			t.Errorf("limit %s %s reported %+v, want %s among them", c.kind, c.value, set, file)
		}
	}
	st, err := h.Stats(box)
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.Max != 32<<20 || st.Pids.Max != Unlimited || st.CPU.QuotaUsec != Unlimited {
		t.Errorf("stats after the limits: memory %d pids %d cpu %d", st.Memory.Max, st.Pids.Max, st.CPU.QuotaUsec)
	}
	if _, _, err := h.Limit(box, Memory, "max"); err != nil {
		t.Fatal(err)
	}
	if st, _ := h.Stats(box); st.Memory.Max != Unlimited {
		t.Errorf("memory max after `limit memory max` = %d, want Unlimited", st.Memory.Max)
	}
}

func TestSetWritesARawControlFileAndRefusesAnythingElse(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := box.dir(Pids)
	s, err := h.Set(box, "pids.max", "7")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := readFile(filepath.Join(d.Path, "pids.max")); got != "7" {
		t.Errorf("pids.max = %q, want 7", got)
	}
	if want := "echo 7 > " + filepath.Join(d.Path, "pids.max"); !slices.Contains(s.Shell, want) {
		t.Errorf("shell = %q, want %q", s.Shell, want)
	}
	for _, c := range []struct{ file, value, want string }{
		{"../pids.max", "1", "not a path"},
		{"pids.current", "1", "read-only"},
		{"pids.maximum", "1", "no such control file"},
		{"hugetlb.2MB.limit_in_bytes", "1", "no hugetlb hierarchy"},
		{"pids.max", "seven", "EINVAL"},
	} {
		if h.Version() == 2 && strings.HasPrefix(c.file, "hugetlb") {
			continue
		}
		if _, err := h.Set(box, c.file, c.value); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("set %s %s: err = %v, want %q", c.file, c.value, err, c.want)
		}
	}
	if got, _ := readFile(filepath.Join(d.Path, "pids.max")); got != "7" {
		t.Errorf("pids.max = %q after refused writes, want 7", got)
	}
	if p, _ := parent.dir(Pids); exists(filepath.Join(p.Path, "pids.max")) {
		if got, _ := readFile(filepath.Join(p.Path, "pids.max")); got != strconv.Itoa(SessionPidsMax) {
			t.Errorf("parent pids.max = %q after set ../pids.max, want stepbox's %d", got, SessionPidsMax)
		}
	}
}

func TestRemoveLeavesNoCgroupEvenRightAfterAProcessExits(t *testing.T) {
	h := openHost(t)
	unchangedAfterRemove(t)
	parent, _, err := h.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killAll(t, h, parent); _, _ = h.Remove(parent) })
	var boxes []*Group
	for _, name := range []string{"web", "db"} {
		box, _, err := h.Create(parent, name, "")
		if err != nil {
			t.Fatal(err)
		}
		boxes = append(boxes, box)
	}
	if err := os.Mkdir(filepath.Join(boxes[0].Dirs[0].Path, "inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Attach(boxes[1], sleeper.Process.Pid); err != nil {
		_ = sleeper.Process.Kill()
		t.Fatal(err)
	}
	_ = sleeper.Process.Kill()
	_ = sleeper.Wait()
	s, err := h.Remove(parent)
	if err != nil {
		t.Fatal(err)
	}
	if left := findCgroups(t, parent.Name); len(left) > 0 {
		t.Errorf("left after Remove: %v", left)
	}
	rmdirs := 0
	for _, c := range s.Calls {
		if strings.HasPrefix(c.Syscall, "rmdir(") {
			rmdirs++
		}
	}
	if rmdirs != 3*len(parent.Dirs)+1+len(parent.Track) {
		t.Errorf("remove step recorded %d rmdirs, want one per cgroup per hierarchy: %v", rmdirs, s.CallLines())
	}
	if _, err := h.Remove(parent); err != nil {
		t.Errorf("a second Remove failed: %v", err)
	}
}

func TestSweepRemovesOnlyTheCgroupsOfDeadSessions(t *testing.T) {
	h := openHost(t)
	pl, err := h.Place("")
	if err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(ExistingAncestor(pl.Dirs[0].Path), "stepbox-test-"+strconv.Itoa(os.Getpid()))
	dead, alive := filepath.Join(top, "stepbox-999999999"), filepath.Join(top, ParentPrefix+strconv.Itoa(os.Getpid()))
	for _, d := range []string{top, dead, filepath.Join(dead, "web-0123456789ab"), alive, filepath.Join(top, "stepbox-web")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := removeTree(kernelFS{}, nil, top); err != nil {
			t.Error(err)
		}
	})
	// A stepbox-<PID> whose PID is not alive here but which holds
	// processes: another PID namespace's session (stepbox in a container).
	other := filepath.Join(top, "stepbox-999999998")
	for _, d := range []string{other, filepath.Join(other, "web-0123456789ab")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() }) // runs before the tree's removal
	if err := os.WriteFile(filepath.Join(other, "web-0123456789ab", "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := Sweep(top, func(pid int) (bool, string) { return pid == os.Getpid(), "" }); err != nil {
		t.Fatal(err)
	}
	if exists(dead) {
		t.Error("the dead session's cgroup survived the sweep")
	}
	if !exists(filepath.Join(other, "web-0123456789ab")) {
		t.Error("the sweep removed a cgroup that still holds processes")
	}
	if !exists(alive) || !exists(filepath.Join(top, "stepbox-web")) {
		t.Error("the sweep removed a live session's cgroup or one not named stepbox-<PID>")
	}
}

func TestDetectTellsThisHostsMode(t *testing.T) {
	requireRoot(t)
	m, err := Detect(DefaultRoot)
	if err != nil {
		t.Fatal(err)
	}
	want := Legacy
	switch {
	case exists(filepath.Join(DefaultRoot, "cgroup.controllers")):
		want = Unified
	case exists(filepath.Join(DefaultRoot, "unified", "cgroup.controllers")):
		want = Hybrid
	}
	if m != want {
		t.Errorf("Detect(%s) = %v, want %v", DefaultRoot, m, want)
	}
}

func BenchmarkStatsOnTheHost(b *testing.B) {
	h := openHost(b)
	parent := newSession(b, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := h.Stats(box); err != nil {
			b.Fatal(err)
		}
	}
}

// An override must name an existing cgroup (v1: in every hierarchy; v2:
// one without processes, unless it is the root), given as an absolute
// path; a good one is where the parent goes.
func TestParentOverrideMustNameACgroupInEveryHierarchy(t *testing.T) {
	h := openHost(t)
	// ut22: a ".." component named the cgroup root (or any other) behind
	// a harmless-looking name.
	bad := []string{"relative/path", "/stepbox-no-such-cgroup", "/" + ParentName("4524-1") + "/..", "/./", "/../x"}
	self := memberOf(t, os.Getpid())
	if h.Version() == 1 {
		if mem := self[Memory]; mem != "/" && mem != self["name=systemd"] {
			bad = append(bad, mem) // no such cgroup in the other hierarchies
		}
	} else if mine := self[""]; mine != "/" {
		bad = append(bad, mine) // it holds this test
	}
	for _, override := range bad {
		if _, _, err := h.NewParent(override); err == nil || !strings.Contains(err.Error(), "--cgroup-parent") {
			t.Errorf("NewParent(%q): err = %v, want the override refused", override, err)
		}
	}
	if found := findCgroups(t, ParentPrefix+strconv.Itoa(os.Getpid())); len(found) > 0 {
		t.Errorf("refused overrides left %v", found)
	}
	if h.Version() == 1 {
		if _, err := h.Attach(&Group{Name: "x", Dirs: []Dir{{Path: "/nonexistent"}}}, 999999999); err == nil || !strings.Contains(err.Error(), "no such process") {
			t.Errorf("attach of a gone PID: err = %v, want no such process", err)
		}
		return
	}
	// The nearest cgroup above this test's without processes, named
	// explicitly: the parent goes there, a box under it can be limited.
	at := nearestWithoutProcesses(t, path.Dir(self[""]))
	unchangedAfterRemove(t)
	parent, s, err := h.NewParent(at)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killAll(t, h, parent)
		if _, err := h.Remove(parent); err != nil {
			t.Error(err)
		}
	})
	if want := path.Join(at, parent.Name); parent.Dirs[0].Cgroup != want || !exists(parent.Dirs[0].Path) || !strings.Contains(s.Summary, "--cgroup-parent "+at) {
		t.Errorf("override %s: parent %s, summary %q", at, parent.Dirs[0].Cgroup, s.Summary)
	}
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.Limit(box, Pids, "20"); err != nil {
		t.Error(err)
	}
	if _, err := h.Attach(box, 999999999); err == nil || !strings.Contains(err.Error(), "no such process") {
		t.Errorf("attach of a gone PID: err = %v, want no such process", err)
	}
}

// A process teardown missed (it cleared stepbox's markers) would keep its
// box cgroup busy for good. Remove ends it: on cgroup v2 through
// cgroup.kill, on v1 (no such file) by killing what cgroup.procs lists.
func TestRemoveEndsWhatTheMarkersMissed(t *testing.T) {
	h := openHost(t)
	parent := newSession(t, h)
	box, _, err := h.Create(parent, "web", "")
	if err != nil {
		t.Fatal(err)
	}
	stray := exec.Command("env", "-i", "sleep", "30")
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}) // closed once the stray has been reaped
	go func() { stray.Wait(); close(done) }()
	t.Cleanup(func() { stray.Process.Kill(); <-done })
	if _, err := h.Attach(box, stray.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Remove(box); err != nil {
		t.Fatalf("Remove with a stray inside: %v", err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the stray survived Remove")
	}
}
