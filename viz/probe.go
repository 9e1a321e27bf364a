package viz

import (
	"fmt"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives"
	"stepbox/primitives/probe"
)

// ProbePanel is the escape probes' table: each probe, open or closed,
// what it saw, and for an open hole the steps that close it. The
// evidence comes from a process the box controls: every cell is escaped
// (renderTable) and was cut to printable text by the session.
func ProbePanel(box string, rs []primitives.ProbeResult, width int, t Theme) string {
	width = max(width, 40)
	open := 0
	var rows [][]string
	for _, r := range rs {
		if r.State == probe.Open {
			open++
		}
		closes := r.Closes
		if closes == "" {
			closes = "-"
		}
		rows = append(rows, []string{r.Name, r.State, r.Evidence, closes})
	}
	title := para(t.Title, fmt.Sprintf("escape probes · box %s · %d open, %d closed · tried from inside, nothing on the host changed", box, open, len(rs)-open), width)
	style := func(row, col int) lipgloss.Style {
		if col == 1 && rs[row].State == probe.Open {
			return t.Bad
		}
		if col == 1 {
			return t.Good
		}
		return t.Same
	}
	return lines(title, t.renderTable([]string{"probe", "state", "evidence", "closed by"}, rows, style, width, 2, 3))
}
