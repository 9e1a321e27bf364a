package primitives

import (
	"context"
	"testing"

	"stepbox/primitives/probe"
)

// lessonSixBox builds the box of lesson 6: five namespaces, the base
// image as its root, /proc, /dev and a read-only /sys, and a cgroup.
func lessonSixBox(t *testing.T, name string) (*Session, *Box) {
	t.Helper()
	s, stack := benchSession(t)
	b, _, err := s.NewBox(name, false)
	if err != nil {
		t.Fatal(err)
	}
	var types []NamespaceType
	for _, n := range []string{"uts", "ipc", "net", "pid", "mnt"} {
		types = append(types, mustType(t, n))
	}
	steps := []func() error{
		func() error { _, err := b.Unshare(types, UnshareOptions{}); return err },
		func() error { _, err := b.MountOverlay(stack); return err },
		func() error { _, err := b.PivotRoot(); return err },
		func() error { _, err := b.Mount("dev", "", "/dev", false); return err },
		func() error { _, err := b.Mount("sys", "", "/sys", false); return err },
		func() error { _, err := b.CgroupNew(); return err },
		func() error { _, _, err := b.CgroupAttach(); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("lesson 6 step %d: %v", i+1, err)
		}
	}
	return s, b
}

func probeBox(t *testing.T, b *Box, names ...string) map[string]ProbeResult {
	t.Helper()
	rs, _, err := b.Probe(context.Background(), names)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]ProbeResult{}
	for _, r := range rs {
		t.Logf("%-18s %-6s %-8s %s", r.Name, r.State, r.Via, r.Evidence)
		m[r.Name] = r
	}
	return m
}

func TestProbesFindTheLessonSixBoxOpen(t *testing.T) {
	needRoot(t)
	_, b := lessonSixBox(t, "p6")
	got := probeBox(t, b)
	for _, name := range []string{"disk", "release_agent", "proc_sys", "remount", "finit_module", "dmesg", "kallsyms", "cgroup_escape"} {
		if got[name].State != probe.Open {
			t.Errorf("probe %s on the lesson-6 box: %s (%s), want open", name, got[name].State, got[name].Evidence)
		}
	}
}
