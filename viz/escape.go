package viz

import (
	"strings"

	"stepbox/primitives/step"
)

// Escape makes a string that came from a box safe to print
// (step.Escape): its control characters, bidirectional controls and bytes
// that are not UTF-8 are shown as escapes (\n, \x1b, \u202e).
func Escape(s string) string { return step.Escape(s) }

// escapeCells escapes every cell of a row, each line of a cell apart (a
// table draws a cell's lines one under the other); escapeRows, of a table.
func escapeCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = EscapeLines(c)
	}
	return out
}

// EscapeLines is Escape for text of several lines: the newlines between
// them stay, everything else is escaped.
func EscapeLines(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && step.UnsafeRune(r) }) {
		return s // the common case: no allocation
	}
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = Escape(l)
	}
	return strings.Join(ls, "\n")
}

func escapeRows(rows [][]string) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = escapeCells(r)
	}
	return out
}
