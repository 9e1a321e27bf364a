package viz

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
)

// cellStyle picks the style of one body cell (row and column from 0).
type cellStyle func(row, col int) lipgloss.Style

// renderTable draws a bordered table no wider than width: lipgloss shrinks
// the columns and truncates cells rather than wrapping them.
func (t Theme) renderTable(headers []string, rows [][]string, style cellStyle, width int) string {
	tb := table.New().
		Border(lipgloss.NormalBorder()).
		BorderStyle(t.Border).
		Headers(headers...).
		Rows(rows...).
		Wrap(false).
		StyleFunc(func(row, col int) lipgloss.Style {
			var s lipgloss.Style
			if row == table.HeaderRow {
				s = t.Title
			} else if style != nil {
				s = style(row, col)
			} else {
				s = t.Same
			}
			return s.Padding(0, 1)
		})
	out := tb.String()
	if lipgloss.Width(out) > width {
		out = tb.Width(width).String()
	}
	return out
}

// truncate shortens s to at most w cells, marking the cut with '…'.
func truncate(s string, w int) string {
	if w <= 0 {
		return ""
	}
	if lipgloss.Width(s) <= w {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && lipgloss.Width(string(r))+1 > w {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

// truncateMiddle shortens a path-like s by cutting out its middle.
func truncateMiddle(s string, w int) string {
	if lipgloss.Width(s) <= w || w < 5 {
		return truncate(s, w)
	}
	r := []rune(s)
	keep := w - 1
	head := keep / 2
	tail := keep - head
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// lines joins non-empty parts with newlines.
func lines(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "\n")
}
