package repl

import (
	"strings"
	"testing"
)

// A learner takes lesson 1 at 80×30 in a real terminal, with the mistakes
// learners make: a typo, a box name the lesson does not use and one that
// does not exist, `next` before the step is done, `reset` between
// lessons. What the screen shows leads them on each time.
func TestALearnerTakesLessonOneWithMistakes(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPaneOf(t, 80, 30)
	dir := t.TempDir()
	p.mark()
	p.stepbox(dir, "XDG_STATE_HOME="+t.TempDir()+" "+stepboxBinary(t)+" --state-dir "+dir+"; echo STEPBOX-EXIT=$?")
	p.waitFor("stepbox ▸")
	step := func(line string, want ...string) string {
		t.Helper()
		p.mark()
		p.line(line)
		return p.waitFor(want...)
	}
	step("lesson 1", "Step 1 of 6 · Namespaces are links in /proc", "new web", "checks your boxes after every command")
	if s := step("nwe", "error:"); strings.Contains(s, "✓") {
		t.Errorf("a typo earned a step:\n%s", s)
	}
	// `new` with no name makes box1; the lesson speaks of box1 from then on.
	step("new", "✓ box box1")
	step("hint", "Box box1 still has the host's UTS namespace")
	// Step 1's check passed before its prediction was answered: what it
	// saw comes with the answer, at `next`.
	step("unshare uts", "✓ Step 1 of 6 done.", "`next` for step 2")
	if s := step("use web", "error:"); strings.Contains(s, "✓") {
		t.Errorf("a wrong box name earned something:\n%s", s)
	}
	step("next", "the check saw: box box1 has its own uts", "Step 2 of 6 · One kernel, a name of its own")
	step("hostname web1", "✓ Step 2 of 6 done")
	step("next", "Step 3 of 6", "Give box1 the same five")
	// `next` before step 3 is done: stepbox says so and moves on.
	step("next", "step 3 has not passed its check yet: skipped, not done", "Step 4 of 6")
	// Step 5's command typed while step 4 is shown (a learner reading
	// ahead); `next` twice: step 5 passes its check then, not skipped.
	step("new db", "✓ box db")
	step("unshare uts", "new uts namespace")
	step("hostname db1", "db1")
	step("next", "Step 5 of 6")
	if s := step("next", "Step 6 of 6"); !strings.Contains(s, "step 5 passes its check: done") || strings.Contains(s, "step 5 has not passed") {
		t.Errorf("a step whose state already held was skipped:\n%s", s)
	}
	// reset between lessons: the session stays usable, and lesson 2
	// judges what the learner builds in it.
	step("reset", "removed")
	s := step("lesson 2", "Step 1 of 8 · uts: a hostname of its own", "checks your boxes after every command")
	if strings.Contains(s, "made before this lesson") {
		t.Errorf("after reset, lesson 2 speaks of boxes from before:\n%s", s)
	}
	step("new web", "✓ box web")
	step("unshare uts", "new uts namespace")
	step("exec hostname", "Your prediction?", "The host's name")
	step("hostname web1", "✓ Step 1 of 8 done: box web is called web1")
	step("exit", "STEPBOX-EXIT=0")
	assertNoSessionState(t, dir)
}
