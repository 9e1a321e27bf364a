package viz

import (
	"regexp"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives/step"
)

// StepPanel prints a step's record: what it did in plain words, each
// syscall in strace form, the same step with standard tools, the man
// pages and how it is undone. A plan (every result "?") says so.
func StepPanel(s *step.Step, width int, t Theme) string {
	var b strings.Builder
	// The command is a line to type again, its words quoted as a shell
	// reads them (step.ShellJoin: an image's Entrypoint when exec names
	// no command): its backslashes are the line's. The summary may name
	// what an image holds as it is: escaped as notes are.
	title := "explain: " + escapeControls(s.Command)
	if s.Planned() {
		title += "   (a plan: nothing has run)"
	}
	// explain is where a learner reads a step in full: long lines wrap,
	// they are never cut, and the shell lines can be copied and run as
	// they are: a comment goes on the lines below, and a command wider
	// than the terminal is folded between its words with a backslash.
	b.WriteString(t.Title.Render(Wrap(title, width, "  ")) + "\n")
	// Paths in the state dir read $STATE, but in the shell lines: those
	// are the exact commands.
	if s.Summary != "" {
		b.WriteString(Hang("  ", Escape(t.short(s.Summary)), width) + "\n")
	}
	// escape is how a section's items are escaped before they are
	// wrapped, so that a newline in one is shown as \n, never starts a
	// line of its own, and what is measured is what is drawn: a note
	// may name what a box made (Escape); a call quotes its strings
	// already (step.Quote), and a shell line, folded whole, is the exact
	// command (escapeControls).
	section := func(name string, items []string, style func(item string) func(string) string, whole bool, escape func(string) string) {
		if len(items) == 0 {
			return
		}
		for _, l := range strings.Split(Hang("  ", name, width), "\n") {
			b.WriteString(t.Dim.Render(l) + "\n")
		}
		for _, it := range items {
			st := style(it)
			if !whole {
				it = Wrap(escape(it), width-4, "  ")
			}
			// Style line by line: lipgloss pads a block to its widest line.
			for _, l := range strings.Split(it, "\n") {
				b.WriteString("    " + st(escapeControls(l)) + "\n")
			}
		}
	}
	var calls []string
	failed := map[string]bool{}
	for _, c := range s.Calls {
		// The result is glued to the call's last argument (a no-break
		// space until wrapped): it ends the call's own line, never
		// starts a line of its own.
		call, comment := c.Split()
		call = t.short(call)
		line := call + nbsp + Glue("= "+c.Result)
		if comment != "" {
			line += step.CommentSep + comment
		}
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
	}, false, escapeControls)
	var shell []string
	for _, l := range s.Shell {
		cmd, comment, ok := strings.Cut(l, step.CommentSep)
		if !ok {
			shell = append(shell, FoldShell(l, width-4))
			continue
		}
		if lipgloss.Width(l) <= width-4 {
			shell = append(shell, l)
			continue
		}
		shell = append(shell, FoldShell(cmd, width-4)+"\n"+Wrap("# "+comment, width-4, "# "))
	}
	section("with standard tools", shell, func(string) func(string) string { return func(x string) string { return t.Cmd.Render(x) } }, true, escapeControls)
	if len(s.Man) > 0 {
		section("man", []string{strings.Join(s.Man, ", ")}, plain, false, Escape)
	}
	if s.Undo != "" {
		section("undo", []string{t.short(s.Undo)}, plain, false, Escape)
	}
	var notes []string
	for _, n := range s.Notes {
		notes = append(notes, t.short(n))
	}
	section("notes", notes, func(string) func(string) string { return func(x string) string { return t.Dim.Render(x) } }, false, Escape)
	return strings.TrimRight(b.String(), "\n")
}

// quotedArg is one string argument of a call in strace form.
var quotedArg = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// shortenArgs fits call into w columns by cutting the middle out of its
// longest quoted argument, again and again; the whole line's middle only
// when no argument is long enough to give.
func shortenArgs(call string, w int) string {
	for lipgloss.Width(call) > w {
		locs := quotedArg.FindAllStringIndex(call, -1)
		best, second := -1, 0 // the longest argument, and the next one's length
		for i, l := range locs {
			n := len([]rune(call[l[0]+1 : l[1]-1]))
			switch {
			case best < 0:
				best = i
			case n > len([]rune(call[locs[best][0]+1:locs[best][1]-1])):
				second = len([]rune(call[locs[best][0]+1 : locs[best][1]-1]))
				best = i
			case n > second:
				second = n
			}
		}
		if best < 0 {
			return cutMiddle(call, w)
		}
		inner := []rune(call[locs[best][0]+1 : locs[best][1]-1])
		excess := lipgloss.Width(call) - w
		// Down to the next-longest at most, so long arguments share the cut.
		keep := max(len(inner)-excess, second, 9)
		if keep >= len(inner) {
			keep = max(len(inner)-max(excess/2, 1), 9)
		}
		if len(inner) <= keep {
			return cutMiddle(call, w)
		}
		call = call[:locs[best][0]+1] + truncateMiddle(string(inner), keep) + call[locs[best][1]-1:]
	}
	return call
}

// CallsPanel lists a step's syscalls one per line, as they happened, each
// shortened to fit width by cutting the middle of its longest string
// arguments (the paths), so every argument stays in view.
func CallsPanel(s *step.Step, width int, t Theme) string {
	var b strings.Builder
	for _, c := range s.Calls {
		result := " = " + c.Result
		call := shortenArgs(t.short(c.Syscall), width-2-len([]rune(result)))
		if strings.HasPrefix(c.Result, "-1") {
			b.WriteString("  " + t.Bad.Render(call+result) + "\n")
			continue
		}
		b.WriteString("  " + t.Dim.Render(call) + t.Good.Render(result) + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}
