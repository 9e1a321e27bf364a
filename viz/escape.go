package viz

import (
	"strings"

	"stepbox/primitives/step"
)

// Escape makes a string that came from a box safe to print
// (step.Escape): its control characters, bidirectional controls and bytes
// that are not UTF-8 are shown as escapes (\n, \x1b, \u202e).
func Escape(s string) string { return step.Escape(s) }

// escapeCells escapes every cell of a row, newlines too: a cell is one
// line of text (a hostname, a command line) and a box that put "\n" in
// one would otherwise draw rows of its own in stepbox's table (ut30 F3);
// escapeRows, of a table. Columns that fold are folded after this.
func escapeCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = Escape(c)
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
