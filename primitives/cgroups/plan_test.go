package cgroups

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"stepbox/primitives/step"
)

var fdArg = regexp.MustCompile(`\b(write|close)\(\d+`)

func planCalls(st *step.Step) []string {
	var out []string
	for _, c := range st.Calls {
		out = append(out, fdArg.ReplaceAllString(c.Syscall, "$1(FD"))
	}
	return out
}

// samePlan checks that plan shows what the step wrote: the same calls,
// shell lines and undo, with nothing run.
func samePlan(t *testing.T, what string, plan, rec *step.Step) {
	t.Helper()
	if !plan.Planned() {
		t.Errorf("%s: the plan has results: %v", what, plan.CallLines())
	}
	if !slices.Equal(planCalls(plan), planCalls(rec)) {
		t.Errorf("%s: calls differ:\nplan %q\nstep %q", what, planCalls(plan), planCalls(rec))
	}
	if !slices.Equal(plan.Shell, rec.Shell) {
		t.Errorf("%s: shell differs:\nplan %q\nstep %q", what, plan.Shell, rec.Shell)
	}
	if plan.Undo != rec.Undo {
		t.Errorf("%s: undo: plan %q, step %q", what, plan.Undo, rec.Undo)
	}
}

// planNew plans `cgroup new` as Box.cgroupNew does: NewParent where
// there is no parent yet, then Create, on one Planning hierarchy, merged.
func planNew(t *testing.T, h Hierarchy, parent *Group, box, id string) *step.Step {
	t.Helper()
	ph := Planning(h)
	s := &step.Step{Command: "cgroup new"}
	if parent == nil {
		var pst *step.Step
		var err error
		parent, pst, err = ph.NewParent("")
		s.Merge(pst)
		if err != nil {
			t.Fatalf("plan the parent: %v", err)
		}
	}
	_, cst, err := ph.Create(parent, box, id)
	s.Merge(cst)
	if err != nil {
		t.Fatalf("plan cgroup new %s: %v", box, err)
	}
	s.MarkNotRun()
	return s
}

// runNew is `cgroup new` run: NewParent where there is none, then Create.
func runNew(t *testing.T, h Hierarchy, parent *Group, box, id string) (*Group, *Group, *step.Step) {
	t.Helper()
	s := &step.Step{Command: "cgroup new"}
	if parent == nil {
		var pst *step.Step
		var err error
		parent, pst, err = h.NewParent("")
		s.Merge(pst)
		if err != nil {
			t.Fatal(err)
		}
	}
	g, cst, err := h.Create(parent, box, id)
	s.Merge(cst)
	if err != nil {
		t.Fatal(err)
	}
	return parent, g, s
}

// On cgroup v2 (a fixture tree that keeps the kernel's rules), the plan
// of `cgroup new`, `set`, `limit` and `attach` is what they then write,
// and planning writes nothing. `cgroup new` is planned by its own code:
// the parent's controllers switched on above it and for its children,
// read back from what the plan wrote, and a box's cgroup under the parent
// as planned, which holds no processes yet.
func TestV2PlansAreWhatTheStepsWrite(t *testing.T) {
	for _, tc := range []struct {
		name        string
		rootEnabled string
		tree        map[string][]int
		cgroup      string
	}{
		{"systemd layout, controllers on", "+cpu +memory +pids", systemdTree(), session},
		// The root switches nothing on: the plan switches cpu memory pids
		// on at the root, then reads them back for the parent's children.
		{"root session, controllers off", "", map[string][]int{}, "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newV2Fixture(t, tc.rootEnabled, tc.tree)
			u := f.open(4242, tc.cgroup, "/")
			const id = "0123456789ab"
			before := f.subtreeControls("")

			plan := planNew(t, u, nil, "web", id)
			if after := f.subtreeControls(""); !maps.Equal(before, after) {
				t.Fatalf("planning changed the tree: %v, was %v", after, before)
			}
			if last := plan.Shell[len(plan.Shell)-1]; !strings.HasPrefix(last, "mkdir ") || !strings.HasSuffix(last, "/stepbox-4242-0/web-"+id) {
				t.Errorf("the plan does not end making the box's cgroup under the parent: %q", plan.Shell)
			}
			parent, box, rec := runNew(t, u, nil, "web", id)
			samePlan(t, "cgroup new", plan, rec)

			plan = planNew(t, u, parent, "db", "89abcdef0123")
			_, _, rec = runNew(t, u, parent, "db", "89abcdef0123")
			samePlan(t, "cgroup new under an existing parent", plan, rec)

			before2 := f.read(box.Dirs[0].Path[len(f.root)+1:], "pids.max")
			plan, err := Planning(u).Set(box, "pids.max", "20")
			if err != nil {
				t.Fatal(err)
			}
			plan.MarkNotRun()
			if got := f.read(box.Dirs[0].Path[len(f.root)+1:], "pids.max"); got != before2 {
				t.Fatalf("planning wrote pids.max: %q, was %q", got, before2)
			}
			rec, err = u.Set(box, "pids.max", "20")
			if err != nil {
				t.Fatal(err)
			}
			samePlan(t, "cgroup set", plan, rec)

			_, plan, err = Planning(u).Limit(box, Memory, "64M")
			if err != nil {
				t.Fatal(err)
			}
			plan.MarkNotRun()
			_, rec, err = u.Limit(box, Memory, "64M")
			if err != nil {
				t.Fatal(err)
			}
			samePlan(t, "cgroup limit memory", plan, rec)

			plan, err = Planning(u).Attach(box, 4250)
			if err != nil {
				t.Fatal(err)
			}
			plan.MarkNotRun()
			rec, err = u.Attach(box, 4250)
			if err != nil {
				t.Fatal(err)
			}
			samePlan(t, "cgroup attach", plan, rec)
		})
	}
}

// On this host's real cgroups (v1 or hybrid here: a cpuset copied into
// each new cpuset cgroup, read from the parent as planned), the plan of
// `cgroup new` is what it then writes, call for call, for the first box
// (the parent made too) and a second (the parent there).
func TestHostPlanOfCgroupNewIsWhatItWrites(t *testing.T) {
	h := openHost(t)
	mine := "stepbox-" + strconv.Itoa(os.Getpid())
	plan := planNew(t, h, nil, "web", "0123456789ab")
	if made := findCgroups(t, mine); len(made) > 0 {
		t.Fatalf("planning made cgroups: %v", made)
	}
	parent, rec := newSessionStep(t, h)
	_, cst, err := h.Create(parent, "web", "0123456789ab")
	if err != nil {
		t.Fatal(err)
	}
	rec.Merge(cst)
	samePlan(t, "cgroup new", plan, rec)
	if d, ok := parent.dir("cpuset"); ok && h.Version() == 1 {
		// Read from the parent the plan had only planned.
		want := "> " + filepath.Join(d.Path, "web-0123456789ab", "cpuset.cpus")
		if !slices.ContainsFunc(plan.Shell, func(l string) bool { return strings.HasSuffix(l, want) }) {
			t.Errorf("the plan copies no cpus into the box's cpuset: %q", plan.Shell)
		}
	}

	plan = planNew(t, h, parent, "db", "89abcdef0123")
	_, rec, err = h.Create(parent, "db", "89abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	samePlan(t, "cgroup new under an existing parent", plan, rec)
}
