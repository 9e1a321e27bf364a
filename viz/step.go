package viz

import (
	"strings"

	"stepbox/primitives/step"
)

// StepPanel prints a step's record: what it did in plain words, each
// syscall in strace form, the same step with standard tools, the man
// pages and how it is undone. A plan (every result "?") says so.
func StepPanel(s *step.Step, width int, t Theme) string {
	var b strings.Builder
	if s.Planned() {
		b.WriteString(t.Title.Render(truncate("explain: "+s.Command+"   (a plan: nothing has run)", width)) + "\n")
	} else {
		b.WriteString(t.Title.Render(truncate("explain: "+s.Command, width)) + "\n")
	}
	if s.Summary != "" {
		b.WriteString("  " + truncate(s.Summary, width-2) + "\n")
	}
	section := func(name string, items []string, style func(string) string) {
		if len(items) == 0 {
			return
		}
		b.WriteString(t.Dim.Render("  "+name) + "\n")
		for _, it := range items {
			b.WriteString("    " + style(truncate(it, width-4)) + "\n")
		}
	}
	var calls []string
	failed := map[string]bool{}
	for _, c := range s.Calls {
		line := c.String()
		calls = append(calls, line)
		failed[truncate(line, width-4)] = strings.HasPrefix(c.Result, "-1")
	}
	name := "syscalls"
	if s.Planned() {
		name = "syscalls   (? is the kernel's answer, known once the step runs)"
	}
	section(name, calls, func(x string) string {
		if failed[x] {
			return t.Bad.Render(x)
		}
		return x
	})
	section("with standard tools", s.Shell, func(x string) string { return t.Cmd.Render(x) })
	if len(s.Man) > 0 {
		section("man", []string{strings.Join(s.Man, ", ")}, func(x string) string { return x })
	}
	if s.Undo != "" {
		section("undo", []string{s.Undo}, func(x string) string { return x })
	}
	section("notes", s.Notes, func(x string) string { return t.Dim.Render(x) })
	return strings.TrimRight(b.String(), "\n")
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
