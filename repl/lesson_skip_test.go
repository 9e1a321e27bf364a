package repl

import (
	"strings"
	"testing"
	"unicode/utf8"

	"stepbox/lessons"
	"stepbox/viz"
)

// Issue 13, finding 6: `lesson 1`, `next`, `new` (box1), then step 2:
// progress must not hold step 1 as done, and the later steps speak of
// box1, the box the learner made, never of web, which they did not.
func TestNextSkipsAStepAndTheLessonNamesTheBoxMadeInstead(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 1", "next", "new", "unshare uts", "hostname web1", "exec hostname", "!uname -r", "exec uname -r")
	lp := sh.Watch.progress.Lesson(sh.Watch.lesson.ID)
	if lp.IsDone(0) || !lp.IsSkipped(0) || !lp.IsDone(1) {
		t.Fatalf("progress after skipping step 1 and passing step 2: done %v, skipped %v\n%s", lp.Done, lp.Skipped, out)
	}
	out.Reset()
	execute(t, sh, out, "next")
	if !strings.Contains(out.String(), "Give box1 the same five") {
		t.Fatalf("step 3 does not speak of box1:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "hint")
	if !strings.Contains(out.String(), "box box1") || strings.Contains(out.String(), "web") {
		t.Fatalf("step 3's hint:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "next", "next", "next")
	if !strings.Contains(out.String(), "use box1") || strings.Contains(out.String(), "use web") {
		t.Fatalf("step 6's commands:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "lesson list")
	if !strings.Contains(out.String(), "skipped") {
		t.Fatalf("lesson list does not say steps were skipped:\n%s", out)
	}
}

// With no box at all after skipping, the step says plainly which box to
// make, under the name the lesson gives it.
func TestASkippedBoxIsNamedAsTheOneToMake(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 1", "next")
	out.Reset()
	execute(t, sh, out, "next")
	if !strings.Contains(out.String(), "You have no box web (step 1 makes it: new web)") {
		t.Fatalf("step 3 after skipping with no box:\n%s", out)
	}
}

// Issue 13, finding 8: `unshare cgroup` before `cgroup new` and `cgroup
// attach` is a dead end for the box; `solution --run` stops at the
// kernel's refusal and then says what to do: make a new box.
func TestASolutionThatCannotGoOnGivesTheHintForTheState(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 2", "new web", "next", "next", "next", "next", "next", "unshare cgroup", "cgroup new", "cgroup attach")
	out.Reset()
	if err := sh.Execute(sh.interrupt, "solution --run"); err == nil {
		t.Fatalf("solution --run went on from a dead end:\n%s", out)
	}
	if !strings.Contains(out.String(), "Make a new box") {
		t.Fatalf("solution --run gave no hint for the state:\n%s", out)
	}
}

// Issue 13, finding 10: lesson 3 resumed at step 4 in a session with no
// box. The hint names the box to make; `solution --run` rebuilds steps
// 1–3 and leaves step 4, its prediction unanswered, to the learner.
func TestResumingWithNoBoxNamesItAndLeavesTheStepToTheLearner(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	first, out := lessonShell(t)
	execute(t, first, out, "lesson 3", "next", "next", "next")
	sh, out := lessonShell(t)
	execute(t, sh, out, "lesson 3")
	if !strings.Contains(out.String(), "resuming at step 4") {
		t.Fatalf("not resumed at step 4:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "hint")
	if strings.Contains(out.String(), "commands name it") || !strings.Contains(out.String(), "new web") {
		t.Fatalf("hint with no box:\n%s", out)
	}
	out.Reset()
	execute(t, sh, out, "solution --run")
	if strings.Contains(out.String(), "Your prediction?") || strings.Contains(out.String(), "changed in the box") {
		t.Fatalf("solution --run ran step 4 too:\n%s", out)
	}
	if lp := sh.Watch.progress.Lesson(sh.Watch.lesson.ID); lp.IsDone(3) || sh.Watch.step != 3 {
		t.Fatalf("step 4 done after rebuilding steps 1–3: done %v, at step %d\n%s", lp.Done, sh.Watch.step+1, out)
	}
	out.Reset()
	execute(t, sh, out, "exec sh -c 'echo \"changed in the box\" >> /etc/motd'", "!cat $BOX_UPPER/etc/motd")
	if !strings.Contains(out.String(), "Step 4 of") || !strings.Contains(out.String(), "Your prediction?") {
		t.Fatalf("step 4 after the rebuild:\n%s", out)
	}
}

// `lesson list` keeps its columns straight whatever the longest title.
func TestLessonListAlignsItsColumnsToTheLongestTitle(t *testing.T) {
	course := []*lessons.Lesson{
		{ID: "a", Number: 1, Title: "Short", Steps: make([]lessons.Step, 2), Minutes: 5},
		{ID: "b", Number: 2, Title: "A title longer than twenty-eight runes", Steps: make([]lessons.Step, 3), Minutes: 9},
	}
	out := lessonList(course, &lessons.Progress{Lessons: map[string]*lessons.LessonProgress{}}, viz.NewTheme("plain"), 100)
	var at []int
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		at = append(at, strings.Index(l, " steps"))
	}
	if len(at) != 2 || at[0] != at[1] || at[0] < 0 {
		t.Errorf("the steps column starts at %v:\n%s", at, out)
	}
}

// `lesson list` folds a row wider than the terminal at words, its
// progress under its own column, never inside a word.
func TestLessonListFoldsALongRowAtWords(t *testing.T) {
	course := []*lessons.Lesson{{ID: "escape", Number: 9, Title: "Escape, then close the holes", Steps: make([]lessons.Step, 9), Minutes: 24}}
	p := &lessons.Progress{Current: "escape", Lessons: map[string]*lessons.LessonProgress{
		"escape": {Step: 8, Done: []int{2, 3, 4, 5, 6, 8}, Skipped: []int{7}, Refused: []int{0, 1}},
	}}
	out := strings.TrimRight(lessonList(course, p, viz.NewTheme("plain"), 80), "\n")
	lines := strings.Split(out, "\n")
	if len(lines) < 2 {
		t.Fatalf("a row wider than 80 columns is not folded:\n%s", out)
	}
	col := utf8.RuneCountInString(lines[0][:strings.Index(lines[0], "6/9 steps")])
	for _, l := range lines {
		if utf8.RuneCountInString(l) > 80 {
			t.Errorf("a line is wider than 80 columns: %q", l)
		}
	}
	for _, l := range lines[1:] {
		if strings.TrimLeft(l, " ") != "" && len(l)-len(strings.TrimLeft(l, " ")) != col {
			t.Errorf("a folded line does not start under the progress column (%d): %q", col, l)
		}
	}
	if !strings.Contains(strings.Join(strings.Fields(out), " "), "(2 cannot be built here)") {
		t.Errorf("a word was broken when folding:\n%s", out)
	}
}
