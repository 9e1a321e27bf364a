package lessons

import (
	"strings"
	"testing"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/rootfs"
)

// Recorded states, built by hand: the checks judge them without root.

const hostInode = 4026531800

// fresh is a box just made: every namespace the host's, its name the host's.
func fresh(name string) BoxState {
	b := BoxState{Name: name, UTS: primitives.UTSName{Box: "debian", Host: "debian"}}
	b.Namespaces.BoxPID = 4000
	for i, t := range primitives.NamespaceRows {
		b.Namespaces.Rows = append(b.Namespaces.Rows, primitives.NamespaceRow{Type: t, Host: uint32(hostInode + i), Box: uint32(hostInode + i)})
	}
	b.Mounts = rootfs.MountTable{Mounts: []rootfs.Mount{{Point: "/", FSType: "ext4", Dev: "8:1", Root: "/"}}}
	b.HostMounts = b.Mounts
	b.Root = primitives.RootView{Link: "/"}
	return b
}

// unshare gives the box new namespaces of the types, as `unshare` does:
// pid and time only for its children, and a PID 1 with pid.
func (b BoxState) unshare(types ...string) BoxState {
	rows := append([]primitives.NamespaceRow(nil), b.Namespaces.Rows...)
	for _, t := range types {
		for i := range rows {
			switch {
			case (t == "pid" || t == "time") && rows[i].Type == t+"_for_children":
				rows[i].Box = rows[i].Host + 1000
			case t != "pid" && t != "time" && rows[i].Type == t:
				rows[i].Box = rows[i].Host + 1000 + uint32(len(b.Name))
			}
		}
		if t == "pid" {
			b.Namespaces.InitPID = 4001
		}
	}
	b.Namespaces.Rows = rows
	return b
}

func (b BoxState) named(host string) BoxState { b.UTS.Box = host; return b }

func (b BoxState) listening(port int) BoxState {
	b.Listeners = append(b.Listeners, primitives.Listener{Addr: "::", Port: port})
	return b
}

// serving gives the box a server, host PID pid, whose socket listens on
// port in the box's network namespace.
func (b BoxState) serving(port, pid int) BoxState {
	inode := uint64(pid) * 7
	b.Sockets = append(b.Sockets, Socket{Inode: inode, PID: pid, Command: "busybox httpd -p 80"})
	b.Listeners = append(b.Listeners, primitives.Listener{Addr: "::", Port: port, Inode: inode})
	return b
}

// onHost gives box a server, host PID pid, listening on port in the host's
// network namespace: one started before the box's `unshare net`, or, with
// box "", the host's own. Boxes sharing the host's namespace see it too.
func onHost(s *State, box string, port, pid int) *State {
	l := primitives.Listener{Addr: "::", Port: port, Inode: uint64(pid) * 7}
	s.HostListeners = append(s.HostListeners, l)
	for i := range s.Boxes {
		b := &s.Boxes[i]
		if b.Name == box {
			b.Sockets = append(b.Sockets, Socket{Inode: l.Inode, PID: pid, Command: "busybox httpd -p 80"})
		}
		if !b.ownNamespace("net") {
			b.Listeners = append(b.Listeners, l)
		}
	}
	return s
}

// shadowing records path as held by each of layers, bottom to top.
func (b BoxState) shadowing(path string, layers ...string) BoxState {
	b.Shadows = append(b.Shadows, primitives.Shadow{Path: path, Layers: layers})
	return b
}

func (b BoxState) stacked(layers ...string) BoxState {
	s := &rootfs.StackSnapshot{Upper: rootfs.LayerInfo{Name: "upper", Dir: "/state/" + b.Name + "/upper"}}
	for _, l := range layers {
		s.Lowers = append(s.Lowers, rootfs.LayerInfo{Name: l, Dir: "/layers/" + l})
		s.Files = append(s.Files, rootfs.Origin{Path: "/" + l, Layer: l})
	}
	b.Stack = s
	b.Mounts.Mounts = append(b.Mounts.Mounts, rootfs.Mount{Point: "/state/" + b.Name + "/merged", FSType: "overlay", Dev: "0:40", Root: "/"})
	return b
}

func (b BoxState) changed(kind rootfs.ChangeKind, path string) BoxState {
	b.Stack.Changes = append(b.Stack.Changes, rootfs.Change{Path: path, Kind: kind, Below: "base"})
	return b
}

func (b BoxState) chrooted() BoxState {
	b.Root.Link = "/state/" + b.Name + "/merged"
	return b
}

func (b BoxState) pivoted() BoxState {
	b.Mounts.Mounts = []rootfs.Mount{{Point: "/", FSType: "overlay", Dev: "0:40", Root: "/"}}
	return b
}

func (b BoxState) mounted(point, fstype string) BoxState {
	b.Mounts.Mounts = append(b.Mounts.Mounts, rootfs.Mount{Point: point, FSType: fstype})
	return b
}

// cgrouped gives the box a cgroup holding procs, with stats.
func (b BoxState) cgrouped(stats cgroups.Stats, procs ...int) BoxState {
	name := b.Name + "-0123456789ab"
	b.Cgroup = &cgroups.Snapshot{BoxGroup: name, BoxPID: 4001, Parent: cgroups.Node{
		Group:    cgroups.Group{Name: "stepbox-1"},
		Children: []cgroups.Node{{Group: cgroups.Group{Name: name}, Procs: procs, Stats: stats}},
	}}
	return b
}

func limited(pidsMax, refused int64) cgroups.Stats {
	return cgroups.Stats{Pids: &cgroups.PidsStats{Current: 7, Max: pidsMax, Refused: refused}}
}

func state(boxes ...BoxState) *State {
	s := &State{Boxes: boxes}
	if len(boxes) > 0 {
		s.Current = boxes[0].Name
	}
	return s
}

func TestChecksJudgeRecordedStates(t *testing.T) {
	web, db := fresh("web"), fresh("db")
	for _, tc := range []struct {
		check string
		s     *State
		want  string // the finding; "" for a pass
	}{
		{"own-namespace uts", state(), "no-box"},
		{"own-namespace uts", state(web), "shares-host"},
		{"own-namespace uts", state(web.unshare("uts")), ""},
		{"own-namespace pid", state(web.unshare("pid")), ""},
		{"hostname", state(web), "shares-uts"},
		{"hostname", state(web.unshare("uts")), "same-name"},
		{"hostname", state(web.unshare("uts").named("web1")), ""},
		{"two-hostnames", state(web.unshare("uts").named("web1")), "one-box"},
		{"two-hostnames", state(web.unshare("uts").named("x"), db.unshare("uts").named("x")), "same-name"},
		{"two-hostnames", state(web.unshare("uts").named("web1"), db.unshare("uts").named("db1")), ""},
		{"port-80-twice", state(web, db), "no-listener"},
		{"port-80-twice", state(web.serving(80, 5001)), "shares-net"},
		{"port-80-twice", state(web.unshare("net").listening(80), db.unshare("net")), "one-listener"},
		{"port-80-twice", state(web.unshare("net").listening(80), db.unshare("net").listening(80)), ""},
		// web's server started before `unshare net`: it holds the host's
		// port, which db, sharing the host's namespace, sees.
		{"port-80-twice", onHost(state(db, web.unshare("net")), "web", 80, 5001), "left-on-host"},
		// ...and the step does not pass while it does, even with two
		// servers in namespaces of their own.
		{"port-80-twice", onHost(state(web.unshare("net").serving(80, 5002), db.unshare("net").serving(80, 5003)), "web", 80, 5001), "left-on-host"},
		// The host's own server on port 80 is no box's doing.
		{"port-80-twice", onHost(state(web.unshare("net").serving(80, 5002), db.unshare("net").serving(80, 5003)), "", 80, 300), ""},
		{"port-80-twice", onHost(state(web), "", 80, 300), "no-listener"},
		{"clock-offset", state(web), "shares-time"},
		{"clock-offset", state(web.unshare("time")), "no-offset"},
		{"docker-namespaces", state(web.unshare("uts", "net")), "missing"},
		{"docker-namespaces", state(web.unshare("uts", "net", "ipc", "mnt", "pid")), ""},
		{"user-namespace", state(web), "shares-user"},
		{"container-process", state(web), "none-running"},
		{"union", state(web), "no-overlay"},
		{"union", state(web.stacked("fileA")), "one-layer"},
		{"union", state(web.stacked("fileA", "fileB")), ""},
		{"shadowed", state(web.stacked("base", "motd")), "nothing-shadows"},
		{"shadowed", state(web.stacked("motd", "base").shadowing("/etc/motd", "motd", "base")), ""},
		{"shadowed base motd", state(web.stacked("motd", "base").shadowing("/etc/motd", "motd", "base")), "wrong-order"},
		{"shadowed base motd", state(web.stacked("base", "motd").shadowing("/etc/motd", "base", "motd")), ""},
		{"shadowed base motd", state(web.stacked("fileA", "fileB").shadowing("/f", "fileA", "fileB")), "nothing-shadows"},
		{"upper-created", state(web.stacked("base")), "not-created"},
		{"upper-created /test", state(web.stacked("base").changed(rootfs.Created, "/other")), "not-created"},
		{"upper-created /test", state(web.stacked("base").changed(rootfs.Created, "/test")), ""},
		{"copied-up", state(web.stacked("base").changed(rootfs.Whiteout, "/etc/issue")), "no-copy-up"},
		{"whiteout", state(web.stacked("base").changed(rootfs.Whiteout, "/etc/issue")), ""},
		{"shared-base", state(web.stacked("base")), "one-overlay"},
		{"shared-base", state(web.stacked("fileA"), db.stacked("fileB")), "no-shared-layer"},
		{"shared-base", state(web.stacked("base").pivoted(), db.stacked("base", "motd").pivoted()), ""},
		// db has stacked base but not pivoted: `exec` in it reads the host's files.
		{"shared-base", state(db.stacked("base", "motd"), web.stacked("base", "motd").pivoted()), "not-pivoted"},
		{"shared-base", state(web.stacked("base"), db.stacked("base", "motd")), "not-pivoted"},
		{"overlay-mounted", state(web), "shares-mnt"},
		{"overlay-mounted", state(web.unshare("mnt")), "no-overlay"},
		{"private-mount", state(web.unshare("mnt")), "no-new-mount"},
		{"private-mount", state(web.unshare("mnt").mounted("/mnt", "tmpfs")), ""},
		{"chrooted", state(web.unshare("mnt").stacked("base")), "not-chrooted"},
		{"chrooted", state(web.unshare("mnt").stacked("base").pivoted()), "pivoted"},
		{"chrooted", state(web.unshare("mnt").stacked("base").chrooted()), ""},
		{"pivoted", state(web.unshare("mnt").stacked("base").chrooted()), "chrooted"},
		{"pivoted", state(web.unshare("mnt").stacked("base")), "not-pivoted"},
		{"pivoted", state(web.unshare("mnt").stacked("base").pivoted()), ""},
		{"proc-mounted", state(web.unshare("mnt").stacked("base").pivoted()), "no-proc"},
		{"own-proc", state(web.unshare("mnt").stacked("base").pivoted().mounted("/proc", "proc")), "no-pid-ns"},
		// No PID namespace and no /proc: mounting one would show the host's.
		{"own-proc", state(web.unshare("mnt").stacked("base").pivoted()), "no-pid-ns"},
		{"own-proc", state(web.unshare("mnt", "pid").stacked("base").pivoted()), "no-proc"},
		{"dev-sys", state(web.unshare("mnt").stacked("base").pivoted().mounted("/dev", "tmpfs")), "no-sys"},
		{"cgroup-made", state(web), "no-cgroup"},
		{"cgroup-attached", state(web.cgrouped(cgroups.Stats{})), "not-attached"},
		{"cgroup-attached", state(web.cgrouped(cgroups.Stats{}, 4001)), ""},
		{"pids-limit", state(web.cgrouped(limited(cgroups.Unlimited, 0), 4001)), "no-limit"},
		{"pids-limit", state(web.cgrouped(limited(20, 0))), "not-attached"},
		{"pids-limit", state(web.cgrouped(limited(20, 0), 4001)), "no-refusal"},
		{"pids-limit", state(web.cgrouped(limited(20, 3), 4001)), ""},
		{"memory-limit", state(web.cgrouped(cgroups.Stats{Memory: &cgroups.MemoryStats{Max: 32 << 20}}, 4001)), "not-hit"},
		{"memory-limit", state(web.cgrouped(cgroups.Stats{Memory: &cgroups.MemoryStats{Max: 32 << 20, OOMKill: 1}}, 4001)), ""},
		{"cpu-limit", state(web.cgrouped(cgroups.Stats{CPU: &cgroups.CPUStats{QuotaUsec: 20000, PeriodUsec: 100000}}, 4001)), "not-throttled"},
		{"sibling-cgroups", state(web.cgrouped(cgroups.Stats{}, 4001)), "one-cgroup"},
		{"sibling-cgroups", state(web.cgrouped(cgroups.Stats{}, 4001), db.cgrouped(cgroups.Stats{})), "empty"},
		{"contained", state(web.cgrouped(cgroups.Stats{}, 4001)), "no-limit"},
		{"cgroup-root", state(web.cgrouped(cgroups.Stats{}, 4001)), "shares-cgroupns"},
	} {
		f := strings.Fields(tc.check)
		c, err := LookupCheck(f[0])
		if err != nil {
			t.Fatal(err)
		}
		r := c.Run(tc.s, f[1:])
		got := r.Finding
		if r.Pass {
			got = ""
		}
		if got != tc.want {
			t.Errorf("%s on %d box(es): finding %q (%s), want %q", tc.check, len(tc.s.Boxes), got, r.Saw, tc.want)
		}
		if _, ok := c.Findings[r.Finding]; !r.Pass && !ok {
			t.Errorf("%s reports %q, which it does not declare", tc.check, r.Finding)
		}
	}
}

func TestEveryCheckFailsWithoutABox(t *testing.T) {
	for _, name := range CheckNames() {
		if r := registry[name].Run(state(), nil); r.Pass || r.Finding != "no-box" {
			t.Errorf("%s with no box: %+v", name, r)
		}
	}
}

func TestEveryCheckOfTheCourseFailsOnAFreshBox(t *testing.T) {
	for _, l := range All() {
		for i, st := range l.Steps {
			if r := st.Judge(state(fresh("web"))); r.Pass {
				t.Errorf("lesson %d step %d passes on a fresh box: %s", l.Number, i+1, r.Saw)
			}
		}
	}
}

func TestABoxWhoseProcessDiedIsReportedGone(t *testing.T) {
	r := registry["hostname"].Run(state(BoxState{Name: "web", Err: "box web: its process has exited"}), nil)
	if r.Pass || r.Finding != "box-gone" || r.Box != "web" {
		t.Fatalf("%+v", r)
	}
}

func TestTheCurrentBoxSpeaksForAFailure(t *testing.T) {
	s := state(fresh("db").unshare("uts"), fresh("web"))
	s.Current = "web"
	if r := registry["hostname"].Run(s, nil); r.Box != "web" || r.Finding != "shares-uts" {
		t.Fatalf("%+v", r)
	}
}

// Each lesson chooses its hints from what its checks saw: two wrong
// states per lesson, and the hint the lesson wrote for each.
func TestLessonHintsAreChosenFromWhatTheCheckSaw(t *testing.T) {
	web, db := fresh("web"), fresh("db")
	course := All()
	for _, tc := range []struct {
		lesson, step int
		s            *State
		want         string // a phrase of the hint
	}{
		{1, 1, state(web), "find the line that changed"},
		{1, 2, state(web.unshare("uts")), "still carries the name"},
		{2, 1, state(web), "would rename the host itself"},
		{2, 3, state(web.unshare("net").listening(80)), "`use db` if you made it"},
		{2, 3, state(web.serving(80, 5001)), "the host's real port 80"},
		{2, 3, onHost(state(db, web.unshare("net")), "web", 80, 5001), "`!kill` the PID stepbox saw"},
		{3, 1, state(web.unshare("mnt").stacked("fileA")), "`rm ab` (if it exists), then `new ab`"},
		{3, 2, state(web.unshare("mnt").stacked("fileA", "fileB")), "Stack motd above base: `rm web`"},
		{3, 2, state(web.unshare("mnt", "pid").stacked("motd", "base").shadowing("/etc/motd", "motd", "base")), "bottom first"},
		{3, 6, state(db.unshare("mnt", "pid").stacked("base", "motd"), web.unshare("mnt", "pid").stacked("base", "motd").pivoted()), "`pivot_root` in it"},
		{4, 2, state(web.unshare("mnt").stacked("base")), "Box jail's root is still the host's"},
		{4, 3, state(web.unshare("mnt").stacked("base").chrooted()), "a chroot cannot be undone"},
		{4, 5, state(web.unshare("mnt").stacked("base").pivoted().mounted("/proc", "proc")), "must come before"},
		{4, 5, state(fresh("cage").unshare("mnt").stacked("base").pivoted()), "`rm cage` (if it exists), then `new cage`"},
		{5, 2, state(web.cgrouped(cgroups.Stats{})), "`cgroup attach`"},
		{5, 3, state(web.cgrouped(limited(20, 0), 4001)), "has not refused a fork"},
		{6, 1, state(web.unshare("uts")), "still shares some of Docker's five"},
		{6, 4, state(db.unshare("pid").cgrouped(cgroups.Stats{}, 4001)), "limits nothing yet"},
	} {
		st := &course[tc.lesson-1].Steps[tc.step-1]
		r := st.Judge(tc.s)
		if r.Pass {
			t.Errorf("lesson %d step %d passes: %s", tc.lesson, tc.step, r.Saw)
			continue
		}
		if h := strings.Join(strings.Fields(Names{}.Fill(st.Hint(r))), " "); !strings.Contains(h, tc.want) {
			t.Errorf("lesson %d step %d, finding %s: hint %q, want one saying %q", tc.lesson, tc.step, r.Finding, h, tc.want)
		}
	}
}

// Issue: the port-80 check blamed the box that saw the host's port 80, not
// the box whose server held it. web started its server before `unshare net`;
// db, sharing the host's namespace, sees the port.
func TestTheBoxHoldingTheHostsPort80IsNamed(t *testing.T) {
	s := onHost(state(fresh("db"), fresh("web").unshare("net")), "web", 80, 5001)
	r := registry["port-80-twice"].Run(s, nil)
	if r.Pass || r.Finding != "left-on-host" || r.Box != "web" || !strings.Contains(r.Saw, "box web's busybox httpd -p 80 (PID 5001)") {
		t.Fatalf("%+v", r)
	}
	s = onHost(state(fresh("db"), fresh("web").unshare("net")), "db", 80, 5002)
	if r := registry["port-80-twice"].Run(s, nil); r.Finding != "shares-net" || r.Box != "db" || !strings.Contains(r.Saw, "PID 5002") {
		t.Fatalf("%+v", r)
	}
}

// Issue: on cgroup v1 memory.failcnt can stay 0 while oom_kill counts a
// kill; the pass message must not say the limit was reached 0 times.
func TestTheMemoryMessageLeavesOutACounterAt0(t *testing.T) {
	for _, tc := range []struct {
		hits, kills int64
		want, not   string
	}{
		{0, 1, "at its memory limit of 32.0M, the OOM killer killed 1 process", "reached"},
		{3, 0, "memory limit 32.0M reached 3 times", "killed"},
		{3, 1, "memory limit 32.0M reached 3 times; the OOM killer killed 1 process", "0 time"},
	} {
		s := state(fresh("web").cgrouped(cgroups.Stats{Memory: &cgroups.MemoryStats{Max: 32 << 20, LimitHits: tc.hits, OOMKill: tc.kills}}, 4001))
		r := registry["memory-limit"].Run(s, nil)
		if !r.Pass || !strings.Contains(r.Saw, tc.want) || strings.Contains(r.Saw, tc.not) {
			t.Errorf("failcnt %d, oom_kill %d: %+v, want %q and no %q", tc.hits, tc.kills, r, tc.want, tc.not)
		}
	}
}

// The tester's finding 15: "the kernel refused 1 fork(s)", "1 time(s)".
// Counts speak English.
func TestCheckCountsArePlural(t *testing.T) {
	s := state(fresh("web").cgrouped(cgroups.Stats{Pids: &cgroups.PidsStats{Current: 19, Max: 20, Refused: 1}}, 4001))
	if r := registry["pids-limit"].Run(s, nil); !r.Pass || !strings.HasSuffix(r.Saw, "refused 1 fork") {
		t.Errorf("%+v", r)
	}
	s = state(fresh("web").cgrouped(cgroups.Stats{Memory: &cgroups.MemoryStats{Max: 32 << 20, LimitHits: 1}}, 4001))
	if r := registry["memory-limit"].Run(s, nil); !r.Pass || !strings.HasSuffix(r.Saw, "reached once") {
		t.Errorf("%+v", r)
	}
}

// Issue: the step about two boxes on one base passed before db pivoted,
// while `exec cat /etc/motd` in db still read the host's file.
func TestSharedBaseNamesTheBoxThatHasNotPivoted(t *testing.T) {
	s := state(fresh("db").stacked("base", "motd"), fresh("web").stacked("base", "motd").pivoted())
	if r := registry["shared-base"].Run(s, nil); r.Pass || r.Finding != "not-pivoted" || r.Box != "db" {
		t.Fatalf("%+v", r)
	}
}

func TestShadowedTakesNoneOrTwoLayers(t *testing.T) {
	c := registry["shadowed"]
	for args, ok := range map[string]bool{"": true, "base": false, "base motd": true, "a b c": false} {
		if err := c.validate(strings.Fields(args)); (err == nil) != ok {
			t.Errorf("shadowed %s: error %v", args, err)
		}
	}
}
