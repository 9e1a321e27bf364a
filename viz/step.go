package viz

import (
	"strings"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives/step"
)

// StepPanel prints a step's record: what it did in plain words, each
// syscall in strace form, the same step with standard tools, the man
// pages and how it is undone. A plan (every result "?") says so.
func StepPanel(s *step.Step, width int, t Theme) string {
	var b strings.Builder
	title := "explain: " + s.Command
	if s.Planned() {
		title += "   (a plan: nothing has run)"
	}
	// explain is where a learner reads a step in full: long lines wrap,
	// they are never cut, and the shell lines stay whole (the terminal
	// folds them), so they can be copied and run as they are.
	b.WriteString(t.Title.Render(wrap(title, width, "  ")) + "\n")
	if s.Summary != "" {
		b.WriteString("  " + wrap(s.Summary, width-2, "    ") + "\n")
	}
	section := func(name string, items []string, style func(item string) func(string) string, whole bool) {
		if len(items) == 0 {
			return
		}
		b.WriteString(t.Dim.Render("  "+name) + "\n")
		for _, it := range items {
			st := style(it)
			if !whole {
				it = wrap(it, width-4, "      ")
			}
			// Style line by line: lipgloss pads a block to its widest line.
			for _, l := range strings.Split(it, "\n") {
				b.WriteString("    " + st(l) + "\n")
			}
		}
	}
	var calls []string
	failed := map[string]bool{}
	for _, c := range s.Calls {
		line := c.String()
		calls = append(calls, line)
		failed[line] = strings.HasPrefix(c.Result, "-1")
	}
	plain := func(string) func(string) string { return func(x string) string { return x } }
	name := "syscalls"
	if s.Planned() {
		name = "syscalls   (? is the kernel's answer, known once the step runs)"
	}
	section(name, calls, func(call string) func(string) string {
		if failed[call] {
			return func(x string) string { return t.Bad.Render(x) }
		}
		return func(x string) string { return x }
	}, false)
	section("with standard tools", s.Shell, func(string) func(string) string { return func(x string) string { return t.Cmd.Render(x) } }, true)
	if len(s.Man) > 0 {
		section("man", []string{strings.Join(s.Man, ", ")}, plain, false)
	}
	if s.Undo != "" {
		section("undo", []string{s.Undo}, plain, false)
	}
	section("notes", s.Notes, func(string) func(string) string { return func(x string) string { return t.Dim.Render(x) } }, false)
	return strings.TrimRight(b.String(), "\n")
}

// wrap folds plain text s to width columns, at a space or after a comma
// or slash where it can and inside a word where it must; every line after the
// first starts with indent (counted in width).
func wrap(s string, width int, indent string) string {
	if width <= len(indent)+8 {
		return s
	}
	var out []string
	w := width
	for {
		r := []rune(s)
		if lipgloss.Width(s) <= w {
			out = append(out, s)
			break
		}
		cut, next := w, w // hard break: the word goes on, on the next line
	search:
		for _, at := range []rune{' ', ',', '/'} { // the best kind of break first
			for i := w; i > w/2; i-- {
				switch {
				case at == ' ' && r[i] == ' ':
					cut, next = i, i+1
					break search
				case at != ' ' && r[i-1] == at:
					cut, next = i, i
					break search
				}
			}
		}
		out = append(out, string(r[:cut]))
		s = string(r[next:])
		if len(out) == 1 {
			w -= len(indent)
		}
	}
	for i := 1; i < len(out); i++ {
		out[i] = indent + out[i]
	}
	return strings.Join(out, "\n")
}

// CallsPanel lists a step's syscalls one per line, as they happened, each
// cut in the middle (where the long paths are) to fit width.
func CallsPanel(s *step.Step, width int, t Theme) string {
	var b strings.Builder
	for _, c := range s.Calls {
		result := " = " + c.Result
		call := truncateMiddle(c.Syscall, width-2-len([]rune(result)))
		if strings.HasPrefix(c.Result, "-1") {
			b.WriteString("  " + t.Bad.Render(call+result) + "\n")
			continue
		}
		b.WriteString("  " + t.Dim.Render(call) + t.Good.Render(result) + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
