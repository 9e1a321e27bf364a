package repl

import (
	"regexp"
	"strings"
	"testing"
)

// Rootless without delegation, every step of lesson 5 makes or limits a
// cgroup: `next` through all of them, the last one too, marks each
// refused, and `lesson list` reads the lesson done with how many steps
// cannot be built here, not "at step 6".
func TestRootlessLessonOfRefusedStepsReadsDoneInTheList(t *testing.T) {
	needRoot(t)
	if cgroupsDelegated() {
		t.Skip("a user manager delegates cgroups to uid 65534 here: lesson 5 works rootless")
	}
	got := rootlessScript(t, 200, "lesson 5", "next", "next", "next", "next", "next", "-next", "lesson list")
	if !strings.Contains(got, "step 6 cannot be built rootless here: marked refused, not failed") {
		t.Errorf("next on the last step does not mark it refused:\n%s", got)
	}
	row := regexp.MustCompile(`(?m)^.*5  .*$`).FindAllString(got[strings.LastIndex(got, "lesson list"):], -1)
	if len(row) == 0 || !strings.Contains(row[0], "✓ done (6 cannot be built here)") {
		t.Errorf("lesson list does not read lesson 5 done with its 6 refused steps: %q\n%s", row, got)
	}
}

// Rootless, `check` on a step that needs root folds the lesson's reason
// as one paragraph, not broken where the lesson's source lines break.
func TestRootlessRefusedCheckFoldsTheReasonAsOneParagraph(t *testing.T) {
	needRoot(t)
	got := rootlessScript(t, 300, "lesson 4", "next", "next", "next", "check")
	verdict := got[strings.LastIndex(got, "step 4 cannot be built rootless here:"):]
	line := verdict[:strings.Index(verdict, "\n")]
	for _, want := range []string{"the box's user namespace owns", "The next step mounts a /proc of the box's own, which works rootless."} {
		if !strings.Contains(line, want) {
			t.Errorf("check's reason is not one paragraph on one 300-column line (no %q in %q):\n%s", want, line, got)
		}
	}
}

// `stepbox lesson check` leaves the learner's state dir as it found it:
// the demo image lesson 8's solutions load, and its layers, are gone
// from `images` and `layers` afterwards.
func TestLessonCheckRemovesTheImagesAndLayersItAdded(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	state := rootlessStateDir(t)
	if got, err := runRootless(t, state, "", "lesson", "check", "8"); err != nil {
		t.Fatalf("rootless lesson check 8: %v\n%s", err, got)
	}
	got, err := runRootless(t, state, "images\nlayers\n", "run", "-")
	if err != nil {
		t.Fatalf("images, layers: %v\n%s", err, got)
	}
	if strings.Contains(got, "demo") {
		t.Errorf("lesson check left its demo image or layers in the state dir:\n%s", got)
	}
	if !strings.Contains(got, "base") {
		t.Errorf("the builtin layers are not listed:\n%s", got)
	}
	noSessionLeft(t, state)
}

// Rootless without delegation, no step of lesson 5 can be built: opening
// it says so up front, and resuming it in a new session does not offer
// to rebuild boxes with solutions that are refused.
func TestRootlessLessonOfRefusedStepsSaysSoAndOffersNoRebuild(t *testing.T) {
	needRoot(t)
	if cgroupsDelegated() {
		t.Skip("a user manager delegates cgroups to uid 65534 here: lesson 5 works rootless")
	}
	hostUnchanged(t)
	state := rootlessStateDir(t)
	first, err := runRootlessWidth(t, state, "lesson 5\nnext\nnext\n", 200, "run", "-")
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, first)
	}
	again, err := runRootlessWidth(t, state, "lesson 5\n", 200, "run", "-")
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, again)
	}
	for _, got := range []string{first, again} {
		if !strings.Contains(flat(got), "No step of lesson 5 can be built rootless here:") {
			t.Errorf("lesson 5 does not say up front that none of it can be built:\n%s", got)
		}
	}
	if !strings.Contains(again, "resuming at step 3") || strings.Contains(again, "rebuilds them") {
		t.Errorf("resuming lesson 5 offers to rebuild boxes with refused solutions:\n%s", again)
	}
	noSessionLeft(t, state)
}
