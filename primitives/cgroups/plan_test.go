package cgroups

import (
	"regexp"
	"slices"
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

// On cgroup v2 (a fixture tree that keeps the kernel's rules), the plan
// of `cgroup new`, `set`, `limit` and `attach` is what they then write,
// and planning writes nothing.
func TestV2PlansAreWhatTheStepsWrite(t *testing.T) {
	f := newV2Fixture(t, "+cpu +memory +pids", systemdTree())
	u := f.open(4242, session, "/")
	const id = "0123456789ab"

	_, plan, err := PlanCreate(u, nil, 4242, "web", id, "")
	if err != nil {
		t.Fatal(err)
	}
	if exists(f.root + "/user.slice/user-1000.slice/stepbox-4242") {
		t.Fatal("planning made the parent cgroup")
	}
	rec := &step.Step{}
	parent, pst, err := u.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	rec.Merge(pst)
	box, cst, err := u.Create(parent, "web", id)
	if err != nil {
		t.Fatal(err)
	}
	rec.Merge(cst)
	samePlan(t, "cgroup new", plan, rec)

	_, plan, err = PlanCreate(u, parent, 4242, "db", "89abcdef0123", "")
	if err != nil {
		t.Fatal(err)
	}
	_, rec, err = u.Create(parent, "db", "89abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	samePlan(t, "cgroup new under an existing parent", plan, rec)

	before := f.read(box.Dirs[0].Path[len(f.root)+1:], "pids.max")
	plan, err = Planning(u).Set(box, "pids.max", "20")
	if err != nil {
		t.Fatal(err)
	}
	plan.MarkNotRun()
	if got := f.read(box.Dirs[0].Path[len(f.root)+1:], "pids.max"); got != before {
		t.Fatalf("planning wrote pids.max: %q, was %q", got, before)
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
}
