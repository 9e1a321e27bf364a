package viz

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives"
)

// dockerChain is the article's `ps -axf` of a Docker container: the chain
// stepbox's own is set beside.
const dockerChain = "dockerd → containerd → containerd-shim → sh (the container's PID 1)"

// Counts a box controls (a fork bomb's processes, a loop of mounts) are
// shown up to a screen's worth of rows, then counted.
const (
	processRowsMax = 50
	mountRowsMax   = 100
)

// moreRows is the line under a table cut at its first shown rows.
func moreRows(t Theme, total, shown int, what string) string {
	return t.Dim.Render(fmt.Sprintf("… and %d more %s", total-shown, what))
}

// ProcessPanel draws the process tree under the session as the host sees
// it: each process with its host PID and, inside a PID namespace, the PID
// the box sees (the last NSpid), and beside each the process that plays
// its part in the article's Docker chain.
func ProcessPanel(root *primitives.ProcessNode, width int, t Theme) string {
	headers := []string{"stepbox", "host PID", "box PID", "in the article's Docker"}
	var rows [][]string
	var inBox []bool
	var walk func(n *primitives.ProcessNode, prefix string, last bool, depth int)
	walk = func(n *primitives.ProcessNode, prefix string, last bool, depth int) {
		branch := ""
		if depth > 0 {
			branch = "├─ "
			if last {
				branch = "└─ "
			}
		}
		boxPID := "-"
		if n.Role != "session" {
			boxPID = fmt.Sprint(n.BoxPID())
		}
		nested := len(n.NSpid) > 1
		if nested {
			boxPID += " *"
		}
		rows = append(rows, []string{prefix + branch + processLabel(n), fmt.Sprint(n.PID), boxPID, dockerPart(n)})
		inBox = append(inBox, nested)
		childPrefix := prefix
		if depth > 0 {
			if last {
				childPrefix += "   "
			} else {
				childPrefix += "│  "
			}
		}
		for i, c := range n.Children {
			walk(c, childPrefix, i == len(n.Children)-1, depth+1)
		}
	}
	walk(root, "", true, 0)
	total := len(rows)
	rows, inBox = rows[:min(total, processRowsMax)], inBox[:min(total, processRowsMax)]
	style := func(row, col int) lipgloss.Style {
		switch {
		case col == 2 && inBox[row]:
			return t.Changed
		case col == 3:
			return t.Dim
		}
		return t.Same
	}
	title := para(t.Title, "process tree · host PID, and the PID inside the box's PID namespace (* = its own)", width)
	chain := para(t.Dim, "the article's Docker: "+dockerChain, width)
	table := t.renderTable(headers, rows, style, width)
	if total > len(rows) {
		table = lines(table, moreRows(t, total, len(rows), "processes (`!ps -e` lists every one)"))
	}
	return lines(title, chain, table)
}

// processLabel names a process by the part it plays.
func processLabel(n *primitives.ProcessNode) string {
	switch n.Role {
	case "session":
		return "stepbox session"
	case "box process":
		return "box process · " + n.Box
	case "PID 1":
		return "PID 1 (init) · " + n.Box
	}
	// The box chose these (argv, prctl(PR_SET_NAME)).
	if n.Cmdline != "" {
		return Escape(n.Cmdline)
	}
	return Escape(n.Comm)
}

// dockerPart is the process of Docker's chain that does n's job.
func dockerPart(n *primitives.ProcessNode) string {
	switch {
	case n.Role == "session":
		return "dockerd → containerd"
	case n.Role == "box process":
		return "containerd-shim"
	case n.Role == "PID 1":
		return "sh, the container's PID 1"
	case strings.Contains(n.Cmdline, " __enter "):
		return "nsenter -t PID"
	case n.Box != "":
		return "a process in the container"
	}
	return ""
}
