package viz

import (
	"fmt"
	"strings"

	"stepbox/primitives"
)

// ProcessPanel draws the process tree under the session as the host sees
// it, each process with its host PID and, inside a PID namespace, the PID
// the box sees (NSpid), beside the chain Docker builds for the same job.
func ProcessPanel(root *primitives.ProcessNode, width int, t Theme) string {
	var b strings.Builder
	b.WriteString(t.Title.Render(truncate("process tree: host PID, and the PID inside the box's PID namespace", width)))
	b.WriteByte('\n')
	var walk func(n *primitives.ProcessNode, prefix string, last bool, depth int)
	walk = func(n *primitives.ProcessNode, prefix string, last bool, depth int) {
		branch := ""
		if depth > 0 {
			branch = "├─ "
			if last {
				branch = "└─ "
			}
		}
		label := n.Comm
		switch n.Role {
		case "session":
			label = "stepbox session"
		case "box process":
			label = "box process of " + n.Box
		case "PID 1":
			label = "PID 1 (init) of " + n.Box
		default:
			if n.Cmdline != "" {
				label = n.Cmdline
			}
		}
		pids := fmt.Sprintf("pid %d", n.PID)
		if len(n.NSpid) > 1 {
			pids += fmt.Sprintf(" = %d in box", n.BoxPID())
		}
		head := prefix + branch
		room := width - len([]rune(head)) - len(pids) - 2
		line := head + truncate(label, room)
		pad := width - len([]rune(line)) - len(pids)
		if pad < 2 {
			pad = 2
		}
		style := t.Same
		if len(n.NSpid) > 1 {
			style = t.Changed
		}
		b.WriteString(line + strings.Repeat(" ", pad) + style.Render(pids) + "\n")
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
	b.WriteString(t.Dim.Render(truncate("docker builds the same chain: dockerd → containerd → containerd-shim → the container's PID 1", width)))
	return b.String()
}
