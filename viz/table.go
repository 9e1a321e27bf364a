package viz

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
)

// cellStyle picks the style of one body cell (row and column from 0).
type cellStyle func(row, col int) lipgloss.Style

// renderTable draws a bordered table no wider than width: the widest
// columns give way first, their cells cut with '…' (a path loses whole
// names from its middle) — except the columns in wrap, the content the
// table exists for, whose cells fold at words onto more lines instead.
func (t Theme) renderTable(headers []string, rows [][]string, style cellStyle, width int, wrap ...int) string {
	headers, rows = fitColumns(escapeCells(headers), escapeRows(rows), width, wrap...)
	tb := table.New().
		Border(lipgloss.NormalBorder()).
		BorderStyle(t.Border).
		Headers(headers...).
		Rows(rows...).
		// Cells come fitted (fitColumns); folded ones span more lines.
		Wrap(true).
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
// Paths (a cell starting with / or $) lose whole names from their
// middle, other text its end; no column goes below 4. The columns in
// wrap are never cut: their cells fold at words (down to 12 columns).
func fitColumns(headers []string, rows [][]string, width int, wrap ...int) ([]string, [][]string) {
	w := columnWidths(headers, rows)
	total := tableWidth(headers, rows)
	if total <= width {
		return headers, rows
	}
	folds := map[int]bool{}
	for _, c := range wrap {
		folds[c] = true
	}
	// Paths give way first, down to 24 columns ($STATE/…/noissue/root): they
	// lose names from the middle and still say where; then the columns
	// in wrap, which fold and lose nothing, down to 20; then the widest
	// of all, down to 12 (wrap) or 4.
	paths := map[int]bool{}
	for _, r := range rows {
		for i, c := range r {
			paths[i] = paths[i] || strings.HasPrefix(c, "/") || strings.HasPrefix(c, "$")
		}
	}
	for _, give := range []struct {
		cols  map[int]bool
		floor int
	}{{paths, 24}, {folds, 20}} {
		for i := range w {
			for give.cols[i] && w[i] > give.floor && total > width {
				w[i]--
				total--
			}
		}
	}
	floor := func(i int) int {
		if folds[i] {
			return 12
		}
		return 4
	}
	for ; total > width; total-- {
		widest := -1
		for i := range w {
			if w[i] > floor(i) && (widest < 0 || w[i] > w[widest]) {
				widest = i
			}
		}
		if widest < 0 {
			break
		}
		w[widest]--
	}
	cut := func(cells []string) []string {
		out := make([]string, len(cells))
		for i, c := range cells {
			if folds[i] {
				out[i] = Wrap(c, w[i], "")
				continue
			}
			ls := strings.Split(c, "\n")
			for j, l := range ls {
				if strings.HasPrefix(l, "/") || strings.HasPrefix(l, "$") {
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
	if w <= 0 {
		return ""
	}
	// Only a prefix can show: what a box wrote (a process's 240 KB of
	// arguments) is cut before it is escaped and measured (ut25 F8).
	s, long := prefix(s, 4*w+16)
	s = escapeControls(s) // what a panel prints may come from a box; its values are escaped (Escape)
	if !long && lipgloss.Width(s) <= w {
		return s
	}
	// The longest prefix that leaves room for '…': found by halving, as
	// measuring one rune shorter each time took the square of its length.
	r := []rune(s)
	lo, hi := 0, len(r)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if lipgloss.Width(string(r[:mid]))+1 <= w {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return string(r[:lo]) + "…"
}

// prefix is s's first n runes at most, and whether s had more.
func prefix(s string, n int) (string, bool) {
	for i := range s {
		if n == 0 {
			return s[:i], true
		}
		n--
	}
	return s, false
}

// cutMiddle shortens s to w columns by taking letters out of its middle,
// for a line that is not a path: a call keeps its start and its " = 0".
func cutMiddle(s string, w int) string {
	s = escapeControls(s)
	if lipgloss.Width(s) <= w {
		return s
	}
	if w < 3 {
		return truncate(s, w)
	}
	r := []rune(s)
	head, tail := (w-1)/2, w-1-(w-1)/2
	for lipgloss.Width(string(r[:head]))+1+lipgloss.Width(string(r[len(r)-tail:])) > w && head > 0 {
		head--
	}
	return string(r[:head]) + "…" + string(r[len(r)-tail:])
}

// truncateMiddle shortens a path-like s to w columns by leaving whole
// names out of its middle: /run/stepbox/sessions/4242-1705/boxes/web/
// overlay/merged becomes /run/…/web/overlay/merged. The names nearest
// the end (the most telling) are kept first, then the head's. Only a
// last name too long for w on its own is cut, at its end.
func truncateMiddle(s string, w int) string {
	s = escapeControls(s) // what a panel prints may come from a box; its values are escaped (Escape)
	if lipgloss.Width(s) <= w {
		return s
	}
	// A name already left out ("…") is not a name to keep.
	var names []string
	for _, n := range strings.Split(s, "/") {
		if n != "…" || len(names) == 0 || names[len(names)-1] != "…" {
			names = append(names, n)
		}
	}
	if len(names) < 3 {
		return truncate(s, w)
	}
	// head is names[:h], tail names[len-k:], "…" between them.
	join := func(h, k int) string {
		head, tail := names[:h], names[len(names)-k:]
		if head[len(head)-1] == "…" {
			head = head[:len(head)-1]
		}
		if len(tail) > 0 && tail[0] == "…" {
			tail = tail[1:]
		}
		return strings.Join(head, "/") + "/…/" + strings.Join(tail, "/")
	}
	// An absolute path keeps its first name: /run/…, not /….
	h, k := 1, 0
	if names[0] == "" && len(names) > 3 && lipgloss.Width(join(2, 1)) <= w {
		h = 2
	}
	for k+1 < len(names)-h && lipgloss.Width(join(h, k+1)) <= w {
		k++
	}
	if k == 0 {
		if last := "…/" + names[len(names)-1]; lipgloss.Width(last) <= w {
			return last
		}
		return truncate(names[len(names)-1], w)
	}
	for h+1 < len(names)-k && lipgloss.Width(join(h+1, k)) <= w {
		h++
	}
	return join(h, k)
}

// withStateNote adds to a panel that writes $STATE what $STATE is.
func (t Theme) withStateNote(panel string, width int) string {
	if t.State == "" || !strings.Contains(panel, "$STATE") {
		return panel
	}
	return panel + "\n" + para(t.Dim, "$STATE is "+t.State+", stepbox's state dir (`!ls $STATE` lists it)", width)
}

// short writes a path in t's state dir from $STATE, as the learner can
// type it in a host command (`!ls $STATE`).
func (t Theme) short(p string) string {
	if t.State == "" {
		return p
	}
	return strings.ReplaceAll(p, t.State+"/", "$STATE/")
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
