// Package lessons is stepbox's course: lessons as data (one Markdown file
// each, embedded), checks that judge the learner's real boxes through
// primitives' snapshots, the hints they choose, and progress.
package lessons

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"stepbox/primitives"
)

// Lesson is one lesson file.
type Lesson struct {
	Number  int    // its place in the course, from 1
	ID      string // the file name without its number and .md: "one-kernel"; progress is kept under it
	File    string
	Title   string
	Minutes int
	Intro   string // Markdown
	Steps   []Step
	Recap   string // Markdown shown once the lesson is over; "" for none
}

// Step is one thing to do and the check that proves it done.
type Step struct {
	Title    string
	Line     int      // where the step starts in its file
	Text     string   // Markdown shown before the commands
	Try      []string // the commands to try, as shown
	After    string   // Markdown shown after the commands
	Checks   []CheckCall
	Hints    map[string]string // by finding; "" is the step's own fallback
	Predict  *Predict
	Solution []string // stepbox script lines; a line starting with '-' may fail
	// Evidence is the index in Solution of the command whose output
	// answers the step's prediction (the line marked '?'); -1 for none.
	Evidence int
	Needs    *Need // the kernel the step needs, if it names one
	// TryRootless are the commands shown, rootless, in place of Try when
	// the step cannot be built rootless (Unmet): what still shows its idea.
	TryRootless []string
	// AnswerRootless answers the prediction where a rootless box shows
	// another answer (every rootless box has a user namespace at `new`);
	// "" when the answer holds in both modes.
	AnswerRootless string

	solutionRootless *rootlessSolution // a ```solution rootless block, until Parse puts it in place
}

// rootlessSolution is a ```solution rootless block: its lines and the
// index of the one marked '?'.
type rootlessSolution struct {
	lines    []string
	evidence int
}

// Need is a kernel a step requires (a ```needs linux 6.3 block): on an
// older kernel the step is explained, not run, and the lesson kit accepts
// that only from steps that say so.
type Need struct {
	Linux string // the first release that has what the step needs: "6.3"
	// Root: a ```needs root block, for a step whose solution runs a host
	// command that cannot work rootless; stepbox's own steps say so
	// themselves when refused (primitives.RefuseRootless).
	Root bool
	Why  string // Markdown: why, and what shows the idea on an older kernel
}

// Unmet says, when the running kernel is older than the step needs, that
// it needs a newer one and why; "" when the step names no need or the
// kernel meets it.
func (s *Step) Unmet() string { return s.unmetOn(primitives.KernelRelease()) }

func (s *Step) unmetOn(release string) string {
	if s.Needs != nil && s.Needs.Root {
		if !primitives.Rootless() {
			return ""
		}
		return "**This step needs root, and stepbox runs rootless.** " + s.Needs.Why
	}
	if r := s.RefusedRootless(); r != nil {
		return "**This step cannot be built rootless here.** " + r.Error() + "."
	}
	if s.Needs == nil || primitives.ReleaseAtLeast(release, s.Needs.Linux) {
		return ""
	}
	return fmt.Sprintf("**This step needs Linux %s or newer, and this kernel is %s.** %s", s.Needs.Linux, release, s.Needs.Why)
}

// RefusedRootless is the refusal of the step's solution in a rootless
// session: its first line (one that may not fail) whose command stepbox
// refuses rootless on any box (primitives.RefuseRootless); nil as root,
// or when every line can run.
func (s *Step) RefusedRootless() *primitives.RootlessRefusal {
	if !primitives.Rootless() {
		return nil
	}
	for _, line := range s.Solution {
		if strings.HasPrefix(line, "-") {
			continue
		}
		if r := primitives.RefuseRootlessLine(line); r != nil {
			return r
		}
	}
	return nil
}

// Shown are the commands the step shows in this mode: rootless, its
// TryRootless when it has one; else Try, or none when the step cannot be
// built here.
func (s *Step) Shown() []string {
	switch {
	case primitives.Rootless() && s.TryRootless != nil:
		return s.TryRootless
	case s.Unmet() == "":
		return s.Try
	}
	return nil
}

// Asks says whether the step asks its prediction in this mode: always
// where it can be built; else only when the commands it shows hold the
// one that answers it, so that no answer comes to a question never asked.
func (s *Step) Asks() bool {
	if s.Predict == nil || s.Evidence < 0 {
		return false
	}
	if s.Unmet() == "" && !(primitives.Rootless() && s.TryRootless != nil) {
		return true
	}
	want := strings.Join(strings.Fields(strings.TrimPrefix(s.Solution[s.Evidence], "-")), " ")
	for _, c := range s.Shown() {
		if strings.Join(strings.Fields(c), " ") == want {
			return true
		}
	}
	return false
}

// Answer is the prediction's answer in this mode.
func (s *Step) Answer() string {
	if s.AnswerRootless != "" && primitives.Rootless() {
		return s.AnswerRootless
	}
	return s.Predict.Answer
}

// CheckCall names a registered check and its arguments.
type CheckCall struct {
	Name string
	Args []string
}

func (c CheckCall) String() string {
	return strings.TrimSpace(c.Name + " " + strings.Join(c.Args, " "))
}

// Predict is a question to answer before running the step, and the
// answer, shown once the step is done.
type Predict struct {
	Question string
	Answer   string
}

//go:embed *.md
var files embed.FS

// All returns the course: every embedded lesson file, in file-name order.
// The files are checked by the tests, so a broken one is a build-time bug.
func All() []*Lesson {
	ls, err := Load(files)
	if err != nil {
		panic(err)
	}
	return ls
}

// Load parses every *.md file at the top of fsys, in name order, and
// numbers the lessons from 1.
func Load(fsys fs.FS) ([]*Lesson, error) {
	names, err := fs.Glob(fsys, "*.md")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []*Lesson
	for _, name := range names {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		l, err := Parse(name, string(data))
		if err != nil {
			return nil, err
		}
		l.Number = len(out) + 1
		out = append(out, l)
	}
	return out, nil
}

// lessonID turns "02-namespaces.md" into "namespaces".
func lessonID(file string) string {
	base := strings.TrimSuffix(path.Base(file), ".md")
	if i := strings.IndexByte(base, '-'); i > 0 && strings.Trim(base[:i], "0123456789") == "" {
		base = base[i+1:]
	}
	return base
}

// Lookup returns lesson n of the course (from 1).
func Lookup(course []*Lesson, n int) (*Lesson, error) {
	if n < 1 || n > len(course) {
		return nil, fmt.Errorf("lesson %d: there are lessons 1 to %d (`lesson list`)", n, len(course))
	}
	return course[n-1], nil
}
