package viz

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
)

// BoxRow is one line of `boxes`.
type BoxRow struct {
	Current    bool
	Name       string
	ID         string
	PID        int
	InitPID    int
	Namespaces []string
	Hostname   string
	Created    time.Time
	State      string
	Cgroup     string // the box's cgroup name, if it has one
	Root       string // overlay / pivoted root summary, if any
}

// BoxesPanel lists the boxes like `docker ps`.
func BoxesPanel(rows []BoxRow, width int, t Theme) string {
	if len(rows) == 0 {
		return t.Dim.Render("no boxes: make one with `new NAME`")
	}
	headers := []string{"", "box", "id", "pid", "pid 1", "namespaces", "hostname", "state"}
	var body [][]string
	for _, r := range rows {
		cur := ""
		if r.Current {
			cur = "*"
		}
		init := "-"
		if r.InitPID != 0 {
			init = fmt.Sprint(r.InitPID)
		}
		ns := strings.Join(r.Namespaces, ",")
		if ns == "" {
			ns = "(host's)"
		}
		host := r.Hostname
		if host == "" {
			host = "-"
		}
		body = append(body, []string{cur, r.Name, r.ID, fmt.Sprint(r.PID), init, ns, host, r.State})
	}
	style := func(row, col int) lipgloss.Style {
		if col == 7 && rows[row].State != "running" {
			return t.Bad
		}
		if rows[row].Current && col == 1 {
			return t.Title
		}
		return t.Same
	}
	return t.renderTable(headers, body, style, width)
}
