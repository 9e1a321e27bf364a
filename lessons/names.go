package lessons

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Names maps the boxes a lesson names in its text ({web}) to the boxes the
// learner made in their place: `new` with no name makes box1, and the
// hints and commands then speak of box1. A name with no box yet stays the
// lesson's own.
type Names map[string]string

// boxMark is {NAME} in a lesson's text; a shell's ${VAR} is not one.
var boxMark = regexp.MustCompile(`\{([a-z][a-z0-9_.-]*)\}`)

// Fill writes each {NAME} of text as the learner's box, or as NAME.
func (n Names) Fill(text string) string {
	var b strings.Builder
	last := 0
	for _, m := range boxMark.FindAllStringSubmatchIndex(text, -1) {
		if m[0] > 0 && text[m[0]-1] == '$' {
			continue
		}
		name := text[m[2]:m[3]]
		if got, ok := n[name]; ok {
			name = got
		}
		b.WriteString(text[last:m[0]])
		b.WriteString(name)
		last = m[1]
	}
	b.WriteString(text[last:])
	return b.String()
}

// FillAll is Fill of each line.
func (n Names) FillAll(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = n.Fill(l)
	}
	return out
}

// marks lists the {NAME}s of text.
func marks(text string) []string {
	var out []string
	for _, m := range boxMark.FindAllStringSubmatchIndex(text, -1) {
		if m[0] == 0 || text[m[0]-1] != '$' {
			out = append(out, text[m[2]:m[3]])
		}
	}
	return out
}

// Makes lists the boxes the step's solution makes, by the lesson's names:
// web for a line `new {web}`.
func (s *Step) Makes() []string {
	var out []string
	for _, line := range s.Solution {
		if name, ok := newBoxLine(line); ok {
			out = append(out, strings.TrimSuffix(strings.TrimPrefix(name, "{"), "}"))
		}
	}
	return out
}

// newBoxLine returns the name a `new NAME …` line gives, as written.
func newBoxLine(line string) (string, bool) {
	f := strings.Fields(strings.TrimPrefix(line, "-"))
	if len(f) < 2 || f[0] != "new" || strings.HasPrefix(f[1], "-") {
		return "", false
	}
	return f[1], true
}

// texts is every piece of the lesson's Markdown, with where it is.
func (l *Lesson) texts() map[string]string {
	out := map[string]string{"the intro": l.Intro, "the recap": l.Recap}
	for i := range l.Steps {
		s := &l.Steps[i]
		at := "step " + s.Title + ": "
		parts := map[string]string{"text": s.Text, "after": s.After, "try": strings.Join(s.Try, "\n"), "solution": strings.Join(s.Solution, "\n"),
			"try rootless": strings.Join(s.TryRootless, "\n")}
		if s.Predict != nil {
			parts["predict"] = s.Predict.Question + "\n" + s.Predict.Answer + "\n" + s.AnswerRootless
		}
		for f, h := range s.Hints {
			parts["hint "+f] = h
		}
		for k, v := range parts {
			out[at+k] = v
		}
	}
	return out
}

// MadeBy is the index of the first step whose solution makes the box the
// lesson calls name; -1 when none does.
func (l *Lesson) MadeBy(name string) int {
	for i := range l.Steps {
		if slices.Contains(l.Steps[i].Makes(), name) {
			return i
		}
	}
	return -1
}

// Named lists the boxes step i speaks of, by the lesson's names, in the
// order its text, commands, solution and hints first name them.
func (l *Lesson) Named(i int) []string {
	s := &l.Steps[i]
	parts := []string{s.Text, strings.Join(s.Try, "\n"), s.After, strings.Join(s.Solution, "\n"), strings.Join(s.TryRootless, "\n")}
	if s.Predict != nil {
		parts = append(parts, s.Predict.Question, s.Predict.Answer, s.AnswerRootless)
	}
	keys := make([]string, 0, len(s.Hints))
	for k := range s.Hints {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, s.Hints[k])
	}
	var out []string
	for _, p := range parts {
		for _, m := range marks(p) {
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// BoxOf is the lesson's name for the box step i works on: the first its
// solution makes, else the first it speaks of, else the last an earlier
// step makes; "" when the lesson names none.
func (l *Lesson) BoxOf(i int) string {
	if m := l.Steps[i].Makes(); len(m) > 0 {
		return m[0]
	}
	if n := l.Named(i); len(n) > 0 {
		return n[0]
	}
	for j := i - 1; j >= 0; j-- {
		if m := l.Steps[j].Makes(); len(m) > 0 {
			return m[len(m)-1]
		}
	}
	return ""
}

// Hint is step i's hint for a failed result. With no box to judge, and
// no hint of the step's own for that, it names the box to make, and the
// earlier steps that build on it.
func (l *Lesson) Hint(i int, r Result) string {
	s := &l.Steps[i]
	if _, own := s.Hints[r.Finding]; own || r.Finding != "no-box" {
		return s.Hint(r)
	}
	name := l.BoxOf(i)
	if name == "" {
		return s.Hint(r)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "There is no box of this lesson yet: this step works on box {%s}", name)
	switch at := l.MadeBy(name); {
	case at < 0 || at == i:
		fmt.Fprintf(&b, ", and `new {%s}` makes it.", name)
	case at == i-1:
		fmt.Fprintf(&b, ", which step %d makes and builds: `new {%s}`, then that step's commands (`solution --run` replays the steps before this one).", at+1, name)
	default:
		fmt.Fprintf(&b, ", which step %d makes and steps %d–%d build on: `new {%s}`, then their commands (`solution --run` replays the steps before this one).", at+1, at+1, i, name)
	}
	b.WriteString(" A box left from before the lesson counts only once `use` makes it current.")
	return b.String()
}
