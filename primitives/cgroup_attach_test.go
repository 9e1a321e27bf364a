package primitives

import (
	"slices"
	"testing"
)

// `cgroup attach` moves the commands a box left running, as read from the
// kernel's /proc/PID/cgroup: found in the box's tracking cgroup where all
// its processes are in its own PID namespace, and by their markers where
// one started in the host's (which may have left that cgroup).
func TestCgroupAttachMovesTheCommandsTheBoxLeftRunning(t *testing.T) {
	needRoot(t)
	for _, hostPID := range []bool{false, true} {
		t.Run(map[bool]string{false: "own PID namespace", true: "host PID namespace"}[hostPID], func(t *testing.T) {
			s := newTestSession(t)
			b, _, err := s.NewBox("att", false)
			if err != nil {
				t.Fatal(err)
			}
			if hostPID {
				run(t, b, "sh", "-c", "sleep 30 >/dev/null 2>&1 &")
			}
			if _, err := b.Unshare(mustTypes(t, "pid"), UnshareOptions{}); err != nil {
				t.Fatal(err)
			}
			run(t, b, "sh", "-c", "sleep 30 >/dev/null 2>&1 &")
			var left []int
			for _, p := range markedProcesses(s.ID, "att") {
				if p.pid != b.PID() && p.pid != b.InitPID() {
					left = append(left, p.pid)
				}
			}
			if want := map[bool]int{false: 1, true: 2}[hostPID]; len(left) != want {
				t.Fatalf("%d commands left running, want %d: %v", len(left), want, left)
			}
			if _, err := b.CgroupNew(); err != nil {
				t.Fatal(err)
			}
			moved, _, err := b.CgroupAttach()
			if err != nil {
				t.Fatal(err)
			}
			g := b.Cgroup()
			for _, pid := range append(left, b.InitPID()) {
				in, err := readProcCgroups(pid)
				if err != nil {
					t.Fatal(err)
				}
				for _, d := range g.Dirs {
					if in[d.Hierarchy] != d.Cgroup {
						t.Errorf("PID %d is in %q of %s after attach, not the box's %q (attach moved %v)", pid, in[d.Hierarchy], d.Hierarchy, d.Cgroup, moved)
					}
				}
				if !slices.Contains(moved, pid) {
					t.Errorf("attach does not name PID %d among those it moved: %v", pid, moved)
				}
			}
		})
	}
}
