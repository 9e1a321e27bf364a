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
	Root       string // what its root is: overlay, pivot, chroot, or "" for the host's
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// BoxesPanel lists the boxes like `docker ps`: each box's processes, how
// far its steps have come (namespaces, root, cgroup), its hostname. Where
// that is too wide, the stage goes in one column as the prompt writes it
// (5 ns|pivot|cg) and `ns`, `boxes` at a wider terminal give the rest.
func BoxesPanel(rows []BoxRow, width int, t Theme) string {
	if len(rows) == 0 {
		return t.Dim.Render("no boxes: make one with `new NAME`")
	}
	headers := []string{"", "box", "id", "pid", "pid 1", "namespaces", "root", "cgroup", "hostname", "state"}
	var wide, narrow [][]string
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
		wide = append(wide, []string{cur, r.Name, r.ID, fmt.Sprint(r.PID), init, ns, orDash(r.Root), orDash(r.Cgroup), orDash(Escape(r.Hostname)), r.State})
		stage := []string{fmt.Sprintf("%d ns", len(r.Namespaces))}
		if r.Root != "" {
			stage = append(stage, r.Root)
		}
		if r.Cgroup != "" {
			stage = append(stage, "cg")
		}
		narrow = append(narrow, []string{cur, r.Name, r.ID, fmt.Sprint(r.PID), init, strings.Join(stage, "|"), orDash(Escape(r.Hostname)), r.State})
	}
	state := len(headers) - 1
	if tableWidth(headers, wide) > width {
		headers = []string{"", "box", "id", "pid", "pid 1", "stage", "hostname", "state"}
		wide, state = narrow, 7
	}
	style := func(row, col int) lipgloss.Style {
		if col == state && rows[row].State != "running" {
			return t.Bad
		}
		if rows[row].Current && col == 1 {
			return t.Title
		}
		return t.Same
	}
	return t.renderTable(headers, wide, style, width)
}
