package lessons

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 13: `new old`, …, `lesson 6`, `new web` — old's root, made before
// the lesson, passed step 2 while web had none. A box left from before
// the lesson earns it nothing, unless the learner makes it current.
func TestABoxLeftFromBeforeTheLessonEarnsNoCredit(t *testing.T) {
	old := fresh("old").unshare("uts", "ipc", "net", "pid", "mnt").named("old1")
	old.Before = true
	step1 := &All()[5].Steps[0] // docker-namespaces, hostname
	s := state(old, fresh("web").unshare("mnt"))
	s.Current = "web"
	if r := step1.Judge(s); r.Pass || r.Box != "web" {
		t.Fatalf("lesson 6 step 1 on web, with old left from before: pass %v on box %s (%s)", r.Pass, r.Box, r.Saw)
	}
	s.Current = "old"
	if r := step1.Judge(s); !r.Pass || r.Box != "old" {
		t.Fatalf("old made current: pass %v on box %s (%s), want a pass on old", r.Pass, r.Box, r.Saw)
	}
	// Checks over two boxes count only the lesson's boxes too.
	db := fresh("db").unshare("uts").named("db1")
	db.Before = true
	s = state(db, fresh("web").unshare("uts").named("web1"))
	s.Current = "web"
	if r := All()[0].Steps[4].Judge(s); r.Pass || r.Finding != "one-box" {
		t.Fatalf("two-hostnames with db left from before: pass %v, finding %s (%s)", r.Pass, r.Finding, r.Saw)
	}
	// Only old boxes, none current: no box of the lesson.
	s = state(old)
	s.Current = ""
	if r := step1.Judge(s); r.Pass || r.Finding != "no-box" || !strings.Contains(r.Saw, "old is from before") {
		t.Fatalf("only a box from before: pass %v, finding %s (%s)", r.Pass, r.Finding, r.Saw)
	}
}

func TestNamesWriteTheLearnersBoxes(t *testing.T) {
	n := Names{"web": "box1"}
	for in, want := range map[string]string{
		"Box {web} still has the host's uts: `use {web}`": "Box box1 still has the host's uts: `use box1`",
		"`new {db}`, then {web}'s root":                   "`new db`, then box1's root",
		`!find / -name "*${BOX_ID}*" {web}`:               `!find / -name "*${BOX_ID}*" box1`,
	} {
		if got := n.Fill(in); got != want {
			t.Errorf("Fill(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every box a lesson's text names is one its solutions make, so it can be
// renamed; the course's own files follow the rule.
func TestLintNamesEveryBoxTheLessonSpeaksOf(t *testing.T) {
	src := "---\ntitle: x\nminutes: 6\n---\n## s\ntext about {cell}\n```try\nnew web\n```\n```check\nhostname\n```\n```predict\nq?\n---\na.\n```\n```solution\nnew web\n? exec hostname\n```\n"
	l, err := Parse("x.md", src)
	if err != nil {
		t.Fatal(err)
	}
	err = l.Lint()
	for _, want := range []string{
		`{cell} names no box the lesson makes`,
		`solution line "new web": name the box {web}`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("lint: %v\nwant %q", err, want)
		}
	}
}

// Issue 13: demo 2 asked what `exec hostname` prints right after
// `unshare uts`, and never ran it there. A prediction names the solution
// line that answers it, and lint fails a lesson without one.
func TestAPredictionNeedsTheCommandThatAnswersIt(t *testing.T) {
	src := "---\ntitle: x\nminutes: 6\n---\n## s\ntext\n```try\nnew {web}\n```\n```check\nhostname\n```\n```predict\nq?\n---\na.\n```\n```solution\nnew {web}\nunshare uts\n```\n"
	l, err := Parse("x.md", src)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Lint(); err == nil || !strings.Contains(err.Error(), "no solution line marked ? to answer it") {
		t.Fatalf("lint of a prediction without evidence: %v", err)
	}
	l, err = Parse("x.md", strings.Replace(src, "unshare uts\n", "unshare uts\n? -exec hostname\nhostname web1\n", 1))
	if err != nil {
		t.Fatal(err)
	}
	if st := l.Steps[0]; st.Evidence != 2 || st.Solution[2] != "-exec hostname" {
		t.Fatalf("evidence %d in %q", st.Evidence, st.Solution)
	}
	if _, err := Parse("x.md", strings.Replace(src, "unshare uts\n", "? unshare uts\n? exec hostname\n", 1)); err == nil || !strings.Contains(err.Error(), "two solution lines") {
		t.Fatalf("two evidence lines: %v", err)
	}
	// In the course, the evidence of lesson 2's first prediction comes
	// right after `unshare uts`, before `hostname` renames the box.
	st := All()[1].Steps[0]
	if st.Solution[st.Evidence] != "exec hostname" || st.Solution[st.Evidence-1] != "unshare uts" {
		t.Fatalf("lesson 2 step 1's evidence: line %d of %q", st.Evidence, st.Solution)
	}
}

// Lesson 6 puts the container together and ends with a recap of the
// course so far, mapped to `docker run`; lesson 7 goes on to the network,
// lesson 8 to real images and runc, lesson 9 to what a runtime applies
// before exec.
func TestTheCourseEndsWithARecap(t *testing.T) {
	course := All()
	if r := course[5].Recap; course[5].ID != "together" || !strings.Contains(r, "docker run") {
		t.Fatalf("lesson 6 (%s)'s recap: %q", course[5].ID, r)
	}
	if _, err := Parse("x.md", "---\ntitle: x\n---\n## a\n```recap\nr\n```\n## b\n"); err == nil || !strings.Contains(err.Error(), "after the ```recap block") {
		t.Fatalf("a step after the recap: %v", err)
	}
}

// The README's table gives each lesson the minutes its header gives.
func TestReadmeGivesEachLessonItsMinutes(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile(`(?m)^\| (\d) \| [^|]+\| (\d+) \|`)
	rows := row.FindAllStringSubmatch(string(data), -1)
	course := All()
	if len(rows) != len(course) {
		t.Fatalf("the README's lesson table has %d rows with minutes, the course %d lessons", len(rows), len(course))
	}
	for _, r := range rows {
		n, _ := strconv.Atoi(r[1])
		m, _ := strconv.Atoi(r[2])
		if l := course[n-1]; l.Minutes != m {
			t.Errorf("README: lesson %d takes %d minutes; its header says %d", n, m, l.Minutes)
		}
	}
}

// A lesson's minutes are its pace estimate (PaceOf), to the minute.
func TestLintHoldsALessonToItsMinutes(t *testing.T) {
	l := All()[0]
	saved := l.Minutes
	defer func() { l.Minutes = saved }()
	l.Minutes = l.PaceOf(0).Minutes() + 3
	if err := l.Lint(); err == nil || !strings.Contains(err.Error(), "a learner takes ~") {
		t.Fatalf("lint of lesson 1 at %d minutes: %v", l.Minutes, err)
	}
}

func TestPaceAddsReadingTypingThinkingAndRunning(t *testing.T) {
	l, err := Parse("x.md", "---\ntitle: x\n---\none two three\n## s\nfour\n```try\nab\n```\n```predict\nq?\n---\na.\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	// 7 words (intro 3, title and text 2, question and answer 2) at 150 a
	// minute; 2 characters at 2.5 a second and 8 s to read the output;
	// 30 s for the prediction; 5 s running.
	p := l.PaceOf(5 * time.Second)
	want := Pace{Reading: 2800 * time.Millisecond, Typing: 8800 * time.Millisecond, Thinking: 30 * time.Second, Running: 5 * time.Second}
	if p != want || p.Minutes() != 1 {
		t.Fatalf("pace %+v (%d min), want %+v", p, p.Minutes(), want)
	}
}

// The tester's finding 11: demo 1's first step said what `ls -Li` shows,
// and never ran it. A command the text after a step's try block speaks of
// (in backquotes) is run by the step's solution, which the demo plays.
func TestTheSolutionRunsWhatTheStepsTextDescribes(t *testing.T) {
	code := regexp.MustCompile("`([^`]+)`")
	for _, l := range All() {
		for _, st := range l.Steps {
			for _, m := range code.FindAllStringSubmatch(st.After, -1) {
				tried, solved := false, false
				for _, c := range st.Try {
					tried = tried || strings.Contains(c, m[1])
				}
				for _, c := range st.Solution {
					solved = solved || strings.Contains(c, m[1])
				}
				if tried && !solved {
					t.Errorf("lesson %d, %q: the text speaks of `%s`, which the solution does not run", l.Number, st.Title, m[1])
				}
			}
		}
	}
}
