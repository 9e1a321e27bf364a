package viz

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
)

// cellStyle picks the style of one body cell (row and column from 0).
type cellStyle func(row, col int) lipgloss.Style

// renderTable draws a bordered table no wider than width: the widest
// columns give way first, their cells cut with '…' rather than wrapped.
func (t Theme) renderTable(headers []string, rows [][]string, style cellStyle, width int) string {
	headers, rows = fitColumns(escapeCells(headers), escapeRows(rows), width)
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
	return tb.String()
}

// columnWidths measures the widest line of each column.
func columnWidths(headers []string, rows [][]string) []int {
	w := make([]int, len(headers))
	measure := func(cells []string) {
		for i, c := range cells {
			for _, l := range strings.Split(c, "\n") {
				w[i] = max(w[i], lipgloss.Width(l))
			}
		}
	}
	measure(headers)
	for _, r := range rows {
		measure(r)
	}
	return w
}

// tableWidth is how wide renderTable draws these cells uncut: a border
// and one space of padding on each side of every cell.
func tableWidth(headers []string, rows [][]string) int {
	total := 1
	for _, x := range columnWidths(headers, rows) {
		total += x + 3
	}
	return total
}

// fitColumns cuts cells until a table of them, with a border and one
// space of padding on each side of every cell, is no wider than width.
// Paths (a cell starting with /) lose their middle, other text its end;
// no column goes below 4.
func fitColumns(headers []string, rows [][]string, width int) ([]string, [][]string) {
	w := columnWidths(headers, rows)
	total := tableWidth(headers, rows)
	if total <= width {
		return headers, rows
	}
	for ; total > width; total-- {
		widest := 0
		for i := range w {
			if w[i] > w[widest] {
				widest = i
			}
		}
		if w[widest] <= 4 {
			break
		}
		w[widest]--
	}
	cut := func(cells []string) []string {
		out := make([]string, len(cells))
		for i, c := range cells {
			ls := strings.Split(c, "\n")
			for j, l := range ls {
				if strings.HasPrefix(l, "/") {
					ls[j] = truncateMiddle(l, w[i])
				} else {
					ls[j] = truncate(l, w[i])
				}
			}
			out[i] = strings.Join(ls, "\n")
		}
		return out
	}
	fitted := make([][]string, len(rows))
	for i, r := range rows {
		fitted[i] = cut(r)
	}
	return cut(headers), fitted
}

// truncate shortens s to at most w cells, marking the cut with '…'.
func truncate(s string, w int) string {
	s = Escape(s) // what a panel prints may come from a box
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
	s = Escape(s)
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
