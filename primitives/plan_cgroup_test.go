package primitives

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
)

// cgroupBox is a box of s with no process, so no tracking cgroup: its
// `cgroup new` is the first use of the session's parent cgroup, which it
// then makes (as where tracking found no cgroup to use).
func cgroupBox(t *testing.T, s *Session, name string) *Box {
	t.Helper()
	b := &Box{Name: name, ID: newID(), session: s, Dir: filepath.Join(s.Dir, "boxes", name), unshared: map[string]bool{}}
	l, err := openLedger(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	b.ledger = l
	t.Cleanup(func() {
		if g := b.Cgroup(); g != nil {
			if _, err := cgroups.RemoveGroup(g); err != nil {
				t.Errorf("remove %s: %v", g.Name, err)
			}
		}
	})
	return b
}

var fdNumber = regexp.MustCompile(`\b(write|close)\(\d+`)

// recordLines are the parts of a record a plan must show as the step
// writes them: calls (descriptors aside), shell lines, undo, notes, man
// pages and the command.
func recordLines(st *step.Step) []string {
	var out []string
	for _, c := range st.Calls {
		out = append(out, "call "+fdNumber.ReplaceAllString(c.Syscall, "$1(FD"))
	}
	for _, l := range st.Shell {
		out = append(out, "shell "+l)
	}
	for _, n := range st.Notes {
		out = append(out, "note "+n)
	}
	return append(out, "undo "+st.Undo, "man "+strings.Join(st.Man, ", "), "command "+st.Command)
}

// `explain cgroup new` is the record `cgroup new` then writes, made by
// the same code: for the session's first box the parent cgroup too (in
// every v1 hierarchy here, the cpuset copied down and the hybrid host's
// cgroup2 tree, with its note), for a second box its cgroup alone.
func TestCgroupNewPlanIsTheRecordItWrites(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	if _, err := s.Cgroups(); err != nil {
		t.Skipf("no cgroups here: %v", err)
	}
	for i, name := range []string{"first", "second"} {
		b := cgroupBox(t, s, name)
		plan, err := b.PlanCgroupNew()
		if err != nil {
			t.Fatalf("explain cgroup new in %s: %v", name, err)
		}
		if !plan.Planned() {
			t.Errorf("%s: the plan has results: %v", name, plan.CallLines())
		}
		if b.Cgroup() != nil || (i == 0 && s.parent != nil) {
			t.Fatalf("%s: planning made a cgroup", name)
		}
		rec, err := b.CgroupNew()
		if err != nil {
			t.Fatalf("cgroup new in %s: %v", name, err)
		}
		if got, want := recordLines(plan), recordLines(rec); !slices.Equal(got, want) {
			t.Errorf("%s: explain cgroup new is not the record cgroup new wrote:\nplan:\n  %s\nstep:\n  %s", name,
				strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		if want := strings.Replace(rec.Summary, "made cgroup", "will make cgroup", 1); plan.Summary != want {
			t.Errorf("%s: the plan says %q, the step %q", name, plan.Summary, rec.Summary)
		}
		if i == 0 && !strings.Contains(strings.Join(plan.Shell, "\n"), "mkdir "+s.parent.Dirs[0].Path+"\n") {
			t.Errorf("%s: the plan does not make the parent %s: %q", name, s.parent.Dirs[0].Path, plan.Shell)
		}
	}
}
