package primitives

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"stepbox/primitives/cgroups"
)

// cgroupLines maps each hierarchy of a /proc/PID/cgroup text ("" in v2)
// to the cgroup there, as readProcCgroups does for a file.
func cgroupLines(text string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 {
			out[f[1]] = f[2]
		}
	}
	return out
}

// holds says whether g has a directory the process of in is in.
func holds(g *cgroups.Group, in map[string]string) bool {
	return g != nil && slices.ContainsFunc(append(slices.Clone(g.Dirs), g.Track...), func(d cgroups.Dir) bool { return in[d.Hierarchy] == d.Cgroup })
}

// What exec says its command inherits names the cgroups the command is
// really in, as the kernel shows them in its /proc/self/cgroup: stepbox's
// tracking cgroup from `new`, which `cgroup new` alone does not leave,
// and the box's own once `cgroup attach` moved the box there (with, on a
// hybrid host, the tracking cgroup of the cgroup2 tree). It said "the
// session's cgroup (the box has none of its own)" of a box in its
// tracking cgroup, and "the cgroup the steps made" of one not attached.
func TestExecSaysTheCgroupItsCommandIsIn(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	b, _, err := s.NewBox("cgw", false)
	if err != nil {
		t.Fatal(err)
	}
	if b.Tracked() == nil {
		t.Skip("this host gave stepbox no cgroup to track the box in")
	}
	for _, c := range []struct {
		stage string
		do    func() error
	}{
		{"new", func() error { return nil }},
		{"cgroup new", func() error { _, err := b.CgroupNew(); return err }},
		{"cgroup attach", func() error { _, _, err := b.CgroupAttach(); return err }},
	} {
		if err := c.do(); err != nil {
			t.Fatalf("%s: %v", c.stage, err)
		}
		var out, errb bytes.Buffer
		es, err := b.Exec(context.Background(), []string{"cat", "/proc/self/cgroup"}, nil, Stdio{Out: &out, Err: &errb})
		if err != nil || es.Code != 0 {
			t.Fatalf("after %s: exec cat /proc/self/cgroup: %v, exit %d: %s", c.stage, err, es.Code, errb.String())
		}
		in := cgroupLines(out.String())
		own, tracked := b.Cgroup(), b.Tracked()
		inOwn, inTracked := holds(own, in), holds(tracked, in)
		summary := es.Step.Summary
		saysOwn := own != nil && strings.Contains(summary, "and the box's cgroup "+own.Name)
		saysTracked := strings.Contains(summary, "stepbox's tracking cgroup "+tracked.Name)
		if saysOwn != inOwn || saysTracked != inTracked || (inOwn || inTracked) && strings.Contains(summary, "session's cgroup") {
			t.Errorf("after %s, exec says %q, but its command is in the box's cgroup: %v, in stepbox's tracking cgroup: %v (/proc/self/cgroup:\n%s)", c.stage, summary, inOwn, inTracked, out.String())
		}
		if want := c.stage == "cgroup attach"; inOwn != want {
			t.Errorf("after %s, the command is in the box's cgroup: %v, want %v:\n%s", c.stage, inOwn, want, out.String())
		}
		if c.stage != "cgroup attach" && !inTracked {
			t.Errorf("after %s, the command is not in stepbox's tracking cgroup %s:\n%s", c.stage, tracked.Name, out.String())
		}
	}
}
