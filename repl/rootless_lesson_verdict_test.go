package repl

import (
	"strings"
	"testing"
)

// A `new` refused because lesson 1's box has the name earns lesson 2's
// first step no ✓ on the old box; after `reset` and the step's commands,
// what the check saw is said as it is then, not as it was.
func TestLessonStepIsNotPraisedAfterAFailedLineNorWithAStaleSaw(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 200,
		"new web", "unshare uts", "hostname web1",
		"lesson 2", "-new web",
		"reset", "new web", "unshare uts", "exec hostname")
	after := between(got, "exists already", "> reset")
	if strings.Contains(after, "✓ Step 1") {
		t.Errorf("a refused `new web` was followed by a ✓ judged on lesson 1's box:\n%s", after)
	}
	if strings.Contains(got, "web1") && strings.Contains(got[strings.LastIndex(got, "exec hostname"):], "web1") {
		t.Errorf("after reset, the check speaks of the old box's web1:\n%s", got)
	}
}

// Rootless, lesson 2's cgroup step shows `exec cat /proc/self/cgroup`
// before and after `unshare cgroup`: the answer ("Just /.") comes after
// the second, not next to the first's output, which contradicts it.
func TestRootlessCgroupStepAnswersAfterTheSecondCat(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 200, "lesson 2", "next", "next", "next", "next", "next", "new web",
		"exec cat /proc/self/cgroup", "unshare cgroup", "exec cat /proc/self/cgroup")
	step := got[strings.Index(got, "Step 6 of 8"):]
	first := between(step, "> exec cat /proc/self/cgroup", "> unshare cgroup")
	if strings.Contains(first, "Your prediction?") {
		t.Errorf("the answer came with the first cat, before `unshare cgroup`:\n%s", first)
	}
	if !strings.Contains(step[strings.LastIndex(step, "> unshare cgroup"):], "Your prediction? Just /.") {
		t.Errorf("no answer after the second cat:\n%s", step)
	}
}

// Rootless, lesson 2's user step cannot be built: it earns no ✓ on a box
// that had its user namespace from `new`, the check does not speak of
// another box, and the answer says the uid on the right is yours, not
// "nobody".
func TestRootlessUserStepIsNotPraisedAndAnswersThatTheUidIsYours(t *testing.T) {
	needRoot(t)
	script := []string{"lesson 2", "new web"}
	for range 7 {
		script = append(script, "next")
	}
	script = append(script, "new u", "unshare uts", "hostname inside-u", "exec id -u", "!cat /proc/$BOX_PID/uid_map", "-next")
	got := rootlessScript(t, 200, script...)
	step := got[strings.Index(got, "Step 8 of 8"):]
	if !strings.Contains(step, "Your prediction? The one on the right of uid_map: yours, the uid stepbox runs as.") {
		t.Errorf("the rootless answer does not say the uid is yours:\n%s", step)
	}
	for _, wrong := range []string{"✓ Step 8", "nobody", "the check saw: box web", "step 8 passes"} {
		if strings.Contains(step, wrong) {
			t.Errorf("step 8 rootless says %q:\n%s", wrong, step)
		}
	}
	if !strings.Contains(step, "step 8 cannot be built rootless here: marked refused, not failed") {
		t.Errorf("next does not mark step 8 refused:\n%s", step)
	}
}

// Rootless, lesson 9's host-PID step cannot be built (`mount proc` is
// refused for the host's PID namespace): it says so before its commands,
// and its solution run ends in that reason, with no ✓ and no answer
// saying the host's file was read.
func TestRootlessHostPIDStepIsRefusedWithoutAFalseAnswer(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 200, "lesson 9", "next", "-solution --run", "check", "hint")
	step := flat(got[strings.Index(got, "Step 2 of 9"):])
	if !strings.Contains(step, "This step needs root, and stepbox runs rootless.") {
		t.Errorf("step 2 does not say it needs root:\n%s", step)
	}
	for _, wrong := range []string{"✓ Step 2", "Your prediction?", "Predict, then run:", "step 2 passes", "The first line of the host's"} {
		if strings.Contains(step, wrong) {
			t.Errorf("step 2 rootless says %q:\n%s", wrong, step)
		}
	}
	if n := strings.Count(step, "step 2 cannot be built rootless here:"); n != 3 {
		t.Errorf("solution --run, check and hint do not each say the step cannot be built (%d):\n%s", n, step)
	}
}

// Lesson 1's root step is about box web, while step 5 left db current:
// `hint` says to `use web` first, not only what db lacks.
func TestLessonHintSaysToUseTheStepsBoxWhenAnotherIsCurrent(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 200, "lesson 1", "new web", "next", "next", "next", "next", "new db", "next", "-pivot_root", "hint")
	hint := flat(got[strings.LastIndex(got, "> hint"):])
	if !strings.Contains(hint, "Hint: This step is about box web, and box db is current: use web first.") {
		t.Errorf("hint does not send the learner to box web:\n%s", hint)
	}
}

// Rootless, lesson 4's /proc step on a box that unshared pid after
// pivot_root: `hint` does not send the learner to `mount proc`, which is
// refused there, but says why and to build the box again.
func TestRootlessHintDoesNotSendToACommandRefusedOnTheBox(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 200, "lesson 4", "next", "next", "next", "next",
		"new cage", "unshare mnt net", "mount overlay base", "pivot_root", "unshare pid", "hint")
	late := flat(between(got, "> unshare pid", "> hint"))
	if !strings.Contains(late, "! rootless, box cage can no longer get a /proc: after pivot_root") {
		t.Errorf("unshare pid after pivot_root does not warn at once that the box can get no /proc:\n%s", late)
	}
	hint := flat(got[strings.LastIndex(got, "> hint"):])
	if strings.Contains(hint, "The box's /proc is empty: mount proc.") {
		t.Errorf("hint sends the learner to a refused mount proc:\n%s", hint)
	}
	if !strings.Contains(hint, "Hint: mount proc would be refused rootless here:") || !strings.Contains(hint, "build a new box with unshare mnt pid before pivot_root") {
		t.Errorf("hint does not say why mount proc is refused and what to do:\n%s", hint)
	}
}

// Rootless without delegation, `solution --run` of lesson 9's first step
// shows the refusal of its cgroup lines and builds the rest of the
// container (security and probe run), not stopping at `cgroup new` with
// a hint to run it.
func TestRootlessSolutionRunPassesOverRefusedLinesAndBuildsTheRest(t *testing.T) {
	needRoot(t)
	if cgroupsDelegated() {
		t.Skip("a user manager delegates cgroups to uid 65534 here: the cgroup lines run")
	}
	got := rootlessScript(t, 200, "lesson 9", "solution --run")
	if !strings.Contains(got, "cgroup new: refused rootless") {
		t.Errorf("the refusal of cgroup new is not shown:\n%s", got)
	}
	for _, wrong := range []string{"The solution cannot go on", "Hint: The box has no cgroup yet", "✓ Step 1"} {
		if strings.Contains(got, wrong) {
			t.Errorf("solution --run says %q:\n%s", wrong, got)
		}
	}
	if !strings.Contains(got, "> probe") || !strings.Contains(got, "`next` marks this step refused, not failed") {
		t.Errorf("solution --run did not go on past the refused lines to probe:\n%s", got)
	}
}
