package viz

import (
	"fmt"
	"strconv"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives"
)

// NamespacePanel is the namespace inode table: the host's namespaces, the
// box process's and its PID 1's, each column named by its PID, with every
// inode that differs from the host's highlighted (and starred, for plain
// output).
func NamespacePanel(s primitives.NamespaceSnapshot, width int, t Theme) string {
	headers := []string{"namespace", fmt.Sprintf("host · %d", s.HostPID), fmt.Sprintf("box %s · %d", s.Box, s.BoxPID)}
	if s.InitPID != 0 {
		headers = append(headers, fmt.Sprintf("its PID 1 · %d", s.InitPID))
	}
	var rows [][]string
	changed := map[[2]int]bool{}
	for i, r := range s.Rows {
		row := []string{r.Type, inode(r.Host), mark(r.Box, r.Host)}
		changed[[2]int{i, 2}] = r.Box != 0 && r.Box != r.Host
		if s.InitPID != 0 {
			row = append(row, mark(r.Init, r.Host))
			changed[[2]int{i, 3}] = r.Init != 0 && r.Init != r.Host
		}
		rows = append(rows, row)
	}
	style := func(row, col int) lipgloss.Style {
		if changed[[2]int{row, col}] {
			return t.Changed
		}
		if col == 0 {
			return t.Same
		}
		return t.Dim
	}
	title := para(t.Title, fmt.Sprintf("namespaces of box %s · inode of /proc/PID/ns/* for each PID; * = not the host's", s.Box), width)
	note := para(t.Dim, "*_for_children: the namespace the process's next children get (pid and time apply only to children)", width)
	return lines(title, t.renderTable(headers, rows, style, width), note)
}

func inode(v uint32) string {
	if v == 0 {
		return "-"
	}
	return strconv.FormatUint(uint64(v), 10)
}

func mark(v, host uint32) string {
	if v != 0 && v != host {
		return inode(v) + " *"
	}
	return inode(v)
}
