package lessons

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestEveryLessonOfTheCourseLints(t *testing.T) {
	course := All()
	if len(course) != 9 {
		t.Fatalf("%d lessons, want the 9 of the course", len(course))
	}
	ids := map[string]bool{}
	for i, l := range course {
		if l.Number != i+1 {
			t.Errorf("%s is lesson %d, want %d", l.File, l.Number, i+1)
		}
		if ids[l.ID] {
			t.Errorf("two lessons with ID %q", l.ID)
		}
		ids[l.ID] = true
		if err := l.Lint(); err != nil {
			t.Errorf("lesson %d: %v", l.Number, err)
		}
	}
}

const sample = `---
title: A sample
minutes: 6
---
The intro, with ` + "`code`" + `.

## First step
Before the commands.
` + "```try" + `
new web
# a comment, dropped
unshare uts
` + "```" + `
After the commands.
` + "```check" + `
own-namespace uts
hostname
` + "```" + `
` + "```hint shares-host" + `
Unshare it.
` + "```" + `
` + "```hint" + `
The fallback.
` + "```" + `
` + "```predict" + `
What happens?
---
This.
` + "```" + `
` + "```solution" + `
new web
-exec false
` + "```" + `
`

func TestParseReadsEveryPartOfAStep(t *testing.T) {
	l, err := Parse("07-sample.md", sample)
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != "sample" || l.Title != "A sample" || l.Minutes != 6 || !strings.Contains(l.Intro, "`code`") {
		t.Fatalf("front matter and intro: %+v", l)
	}
	s := l.Steps[0]
	switch {
	case s.Title != "First step" || s.Text != "Before the commands." || s.After != "After the commands.":
		t.Errorf("prose: %q / %q / %q", s.Title, s.Text, s.After)
	case strings.Join(s.Try, "|") != "new web|unshare uts":
		t.Errorf("try: %q", s.Try)
	case len(s.Checks) != 2 || s.Checks[0].Name != "own-namespace" || strings.Join(s.Checks[0].Args, " ") != "uts" || s.Checks[1].Name != "hostname":
		t.Errorf("checks: %v", s.Checks)
	case s.Hints["shares-host"] != "Unshare it." || s.Hints[""] != "The fallback.":
		t.Errorf("hints: %q", s.Hints)
	case s.Predict == nil || s.Predict.Question != "What happens?" || s.Predict.Answer != "This.":
		t.Errorf("predict: %+v", s.Predict)
	case strings.Join(s.Solution, "|") != "new web|-exec false":
		t.Errorf("solution: %q", s.Solution)
	}
}

func TestParseRejectsBrokenFilesWithTheLine(t *testing.T) {
	for name, tc := range map[string]struct{ src, want string }{
		"unclosed block":   {"---\ntitle: x\n---\n## s\n```try\nnew web\n", "x.md:5: the ```try block is not closed"},
		"unknown block":    {"---\ntitle: x\n---\n## s\n```run\nnew\n```\n", "x.md:5: unknown block ```run"},
		"block before any": {"---\ntitle: x\n---\n```try\nnew\n```\n", "x.md:4: a ```try block before the first step"},
		"predict, no ---":  {"---\ntitle: x\n---\n## s\n```predict\nwhat?\n```\n", "x.md:5: a ```predict block holds"},
		"unknown key":      {"---\ntitle: x\nlevel: 3\n---\n", "x.md:3: front matter: unknown key"},
		"no title":         {"## s\n", "no title"},
		"no steps":         {"---\ntitle: x\n---\ntext\n", "no steps"},
		"try with a name":  {"---\ntitle: x\n---\n## s\n```try web\nnew\n```\n", "```try takes nothing"},
		"needs no kernel":  {"---\ntitle: x\n---\n## s\n```needs 6.3\nwhy\n```\n", "x.md:5: ```needs 6.3: name a kernel as `needs linux 6.3`"},
		"needs no reason":  {"---\ntitle: x\n---\n## s\n```needs linux 6.3\n```\n", "says why the step needs Linux 6.3"},
	} {
		if _, err := Parse("x.md", tc.src); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

// A step that needs a newer kernel says so, and why, on an older one,
// and nothing on a kernel that has what it needs.
func TestAStepNeedingANewerKernelSaysSoOnAnOlderOne(t *testing.T) {
	l, err := Parse("07-sample.md", sample+"```needs linux 6.3\nBecause of a rule; `unshare --time --fork` shows it.\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	st := &l.Steps[0]
	if st.Needs == nil || st.Needs.Linux != "6.3" {
		t.Fatalf("needs = %+v, want linux 6.3", st.Needs)
	}
	got := st.unmetOn("6.1.0-57-cloud-amd64")
	for _, want := range []string{"needs Linux 6.3 or newer", "this kernel is 6.1.0-57-cloud-amd64", "Because of a rule", "unshare --time --fork"} {
		if !strings.Contains(got, want) {
			t.Errorf("unmet on 6.1 = %q, want %q in it", got, want)
		}
	}
	for _, release := range []string{"6.3.0", "6.18.44-fc", "7.0"} {
		if got := st.unmetOn(release); got != "" {
			t.Errorf("unmet on %s = %q, want nothing", release, got)
		}
	}
	if err := l.Lint(); err != nil && strings.Contains(err.Error(), "needs") {
		t.Errorf("lint: %v", err)
	}
}

// No step of the course needs a newer kernel: the time step needed 6.3
// while Go started every command with clone(CLONE_VM); the C executor
// forks without it. A step that does need one says so, and what shows
// the idea meanwhile.
func TestNoStepOfTheCourseNeedsANewerKernel(t *testing.T) {
	for _, l := range All() {
		for _, st := range l.Steps {
			if st.Needs != nil && !st.Needs.Root {
				t.Errorf("%s: %q needs Linux %s", l.ID, st.Title, st.Needs.Linux)
			}
		}
	}
	l, err := Parse("07-sample.md", strings.Replace(sample, "```solution", "```needs linux 6.3\nUse `!unshare --time --fork` meanwhile.\n```\n```solution", 1))
	if err != nil {
		t.Fatal(err)
	}
	st := l.Steps[0]
	if st.Needs == nil || !strings.Contains(st.unmetOn("6.1.0"), "unshare --time --fork") || st.unmetOn("6.3.0") != "" {
		t.Errorf("a step that needs 6.3: %+v, on 6.1 %q, on 6.3 %q", st.Needs, st.unmetOn("6.1.0"), st.unmetOn("6.3.0"))
	}
}

func TestLintNamesWhatALessonLacks(t *testing.T) {
	l, err := Parse("07-sample.md", strings.Replace(sample, "```hint shares-host", "```hint no-such-finding", 1)+
		"## Second\n```check\nno-such-check\n```\n## Third\nText.\n```try\nx\n```\n```check\nown-namespace nonsense\n```\n```solution\nx\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	err = l.Lint()
	if err == nil {
		t.Fatal("a broken lesson passes lint")
	}
	for _, want := range []string{
		`finding "no-such-finding", which its checks never report`,
		`unknown check "no-such-check"`,
		`step "Second": no explanation`, `step "Second": no ` + "```try", `step "Second": no ` + "```solution",
		`unknown namespace type "nonsense"`,
		"3 steps; a lesson has 6 to 12",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("lint does not say %q:\n%v", want, err)
		}
	}
}

func TestAddingALessonIsAddingAFile(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, l := range All() {
		src, err := files.ReadFile(l.File)
		if err != nil {
			t.Fatal(err)
		}
		fsys[l.File] = &fstest.MapFile{Data: src}
	}
	fsys["10-sample.md"] = &fstest.MapFile{Data: []byte(sample)}
	course, err := Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(course); n != 10 || course[9].ID != "sample" || course[9].Number != 10 {
		t.Fatalf("course of %d, last %s", n, course[n-1].ID)
	}
}

func TestProgressSurvivesARestart(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	p, err := LoadProgress()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(os.Getenv("XDG_STATE_HOME"), "stepbox", "progress.json")
	if p.Path() != want {
		t.Fatalf("progress at %s, want %s", p.Path(), want)
	}
	lp := p.Lesson("namespaces")
	lp.MarkDone(0)
	lp.MarkDone(2)
	lp.MarkDone(0)
	lp.Step = 3
	p.Current = "namespaces"
	if err := p.Save(); err != nil {
		t.Fatal(err)
	}
	again, err := LoadProgress()
	if err != nil {
		t.Fatal(err)
	}
	got := again.Lesson("namespaces")
	if again.Current != "namespaces" || got.Step != 3 || len(got.Done) != 2 || !got.IsDone(2) || got.IsDone(1) {
		t.Fatalf("after a restart: current %q, %+v", again.Current, got)
	}
	ents, _ := os.ReadDir(filepath.Dir(want))
	if len(ents) != 1 {
		t.Fatalf("the save left temporary files: %v", ents)
	}
	again.Reset("namespaces")
	if again.Current != "" || again.Lessons["namespaces"] != nil {
		t.Fatalf("reset kept %+v", again)
	}
}

func TestABrokenProgressFileIsReported(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "progress.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	p, err := ReadProgress(path)
	if err == nil || !strings.Contains(err.Error(), "lesson reset all") {
		t.Fatalf("error %v", err)
	}
	if p == nil || len(p.Lessons) != 0 {
		t.Fatalf("progress %+v", p)
	}
}

// A ```needs root block marks a step that cannot work rootless, with why;
// run with root (as the tests are), nothing is unmet.
func TestNeedsRootBlockParsesAndIsMetWithRoot(t *testing.T) {
	l, err := Parse("07-sample.md", strings.Replace(sample, "```solution", "```needs root\nrunc needs a cgroup it may write.\n```\n```solution", 1))
	if err != nil {
		t.Fatal(err)
	}
	st := l.Steps[0]
	if st.Needs == nil || !st.Needs.Root || st.Needs.Why != "runc needs a cgroup it may write." {
		t.Fatalf("needs root block parsed as %+v", st.Needs)
	}
	if os.Geteuid() == 0 {
		if why := st.Unmet(); why != "" {
			t.Errorf("as root, a needs root step is unmet: %s", why)
		}
	}
	if _, err := Parse("07-sample.md", strings.Replace(sample, "```solution", "```needs root\n```\n```solution", 1)); err == nil || !strings.Contains(err.Error(), "needs root") {
		t.Errorf("a needs root block without why: %v", err)
	}
}

// A ```try rootless block is the step's rootless commands, a ```predict
// rootless block its rootless answer; as root the step shows its own
// commands and answer, and asks its question.
func TestRootlessBlocksParseAndLeaveTheRootStepAsItWas(t *testing.T) {
	l, err := Parse("07-sample.md", sample+"```try rootless\nexec id -u\n```\n```predict rootless\nThe rootless answer.\n```\n")
	if err != nil {
		t.Fatal(err)
	}
	st := l.Steps[len(l.Steps)-1]
	if strings.Join(st.TryRootless, "|") != "exec id -u" || st.AnswerRootless != "The rootless answer." {
		t.Fatalf("rootless blocks read as %q, %q", st.TryRootless, st.AnswerRootless)
	}
	if os.Geteuid() == 0 {
		if st.Answer() != st.Predict.Answer || strings.Join(st.Shown(), "|") != strings.Join(st.Try, "|") || st.Asks() != (st.Evidence >= 0) {
			t.Errorf("as root the step shows %q, answers %q, asks %v", st.Shown(), st.Answer(), st.Asks())
		}
	}
	if _, err := Parse("x.md", sample+"```predict rootless\nOne.\n```\n```predict rootless\nTwo.\n```\n"); err == nil ||
		!strings.Contains(err.Error(), "at most one ```predict rootless block") {
		t.Errorf("a second predict rootless block is not refused: %v", err)
	}
}
