package lessons

import (
	"regexp"
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
		parts := map[string]string{"text": s.Text, "after": s.After, "try": strings.Join(s.Try, "\n"), "solution": strings.Join(s.Solution, "\n")}
		if s.Predict != nil {
			parts["predict"] = s.Predict.Question + "\n" + s.Predict.Answer
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
