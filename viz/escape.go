package viz

import (
	"strings"

	"stepbox/primitives/step"
)

// Escape makes a string that came from a box safe to print
// (step.Escape): its control characters, bidirectional controls and bytes
// that are not UTF-8 are shown as escapes (\n, \x1b, \u202e), a
// backslash as \\. A panel escapes each value the box named once, where
// it builds the value's cell or line; what draws the panel (renderTable,
// truncate, Wrap, esc) escapes control characters only (escapeControls),
// which leaves an escaped value as it is.
func Escape(s string) string { return step.Escape(s) }

// escapeControls is what every drawing function applies to the text it
// is given (step.EscapeControls): a control character that reached it
// unescaped is still shown escaped, and a value Escape escaped keeps its
// one backslash per escape.
func escapeControls(s string) string { return step.EscapeControls(s) }

// escapeCells escapes every cell of a row, newlines too: a cell is one
// line of text (a hostname, a command line) and a box that put "\n" in
// one would otherwise draw rows of its own in stepbox's table (ut30 F3);
// escapeRows, of a table. Columns that fold are folded after this. The
// panel escaped the values in the cells (Escape); this is the net under
// it.
func escapeCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = escapeControls(c)
	}
	return out
}

// EscapeLines is escapeControls for text of several lines (a live page,
// an error message): the newlines between them stay, every other control
// character is escaped, and backslashes, which values escaped in it
// (Escape) hold, are left.
func EscapeLines(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && step.UnsafeRune(r) }) {
		return s // the common case: no allocation
	}
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = escapeControls(l)
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
