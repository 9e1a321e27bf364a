package viz

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"mvdan.cc/sh/v3/syntax"
)

// shellIndent starts each continuation line of a folded command.
const shellIndent = "    "

// FoldShell breaks a command line wider than width between its words,
// never inside a quoted word, ending each broken line with a backslash:
// copied from the terminal, the lines run as the one command. A line
// that does not parse, or whose words cannot be fitted, stays whole.
func FoldShell(line string, width int) string {
	if lipgloss.Width(line) <= width {
		return line
	}
	f, err := syntax.NewParser().Parse(strings.NewReader(line), "")
	if err != nil {
		return line
	}
	// Where words begin: after the first word of each command, a break
	// may go before any of them.
	var starts []int
	syntax.Walk(f, func(n syntax.Node) bool {
		if c, ok := n.(*syntax.CallExpr); ok {
			for i, w := range c.Args {
				if off := int(w.Pos().Offset()); i > 0 || off > 0 {
					starts = append(starts, off)
				}
			}
		}
		return true
	})
	var out []string
	from, room := 0, width
	for lipgloss.Width(line[from:]) > room {
		cut := -1
		for _, s := range starts {
			if s > from && lipgloss.Width(strings.TrimRight(line[from:s], " "))+2 <= room {
				cut = s
			}
		}
		if cut < 0 {
			break // the next word alone is wider than the room
		}
		out = append(out, strings.TrimRight(line[from:cut], " ")+" \\")
		from, room = cut, width-len(shellIndent)
	}
	out = append(out, line[from:])
	return strings.Join(out, "\n"+shellIndent)
}
