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
	box := Escape(s.Box) // escaped once, as every panel names the box
	headers := []string{"namespace", fmt.Sprintf("host · %d", s.HostPID), fmt.Sprintf("box %s · %d", box, s.BoxPID)}
	if s.InitPID != 0 {
		headers = append(headers, fmt.Sprintf("its PID 1 · %d", s.InitPID))
	}
	var hostUser, boxUser uint32
	for _, r := range s.Rows {
		if r.Type == "user" {
			hostUser, boxUser = r.Host, r.Box
			if s.InitPID != 0 {
				boxUser = r.Init
			}
		}
	}
	if s.UserNS {
		headers = append(headers, "owned by user ns")
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
		if s.UserNS {
			changed[[2]int{i, len(row)}] = r.Owner != 0 && r.Owner != hostUser
			row = append(row, owner(r.Owner, hostUser, boxUser))
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
	title := para(t.Title, fmt.Sprintf("namespaces of box %s · inode of /proc/PID/ns/* for each PID; * = not the host's", box), width)
	note := para(t.Dim, "*_for_children: the namespace the process's next children get (pid and time apply only to children)", width)
	if s.UserNS {
		own := para(t.Dim, "owned by: the user namespace whose capabilities count over it; the box's root has none over the host's", width)
		return lines(title, t.renderTable(headers, rows, style, width), note, own)
	}
	return lines(title, t.renderTable(headers, rows, style, width), note)
}

// owner names the user namespace that owns a namespace: the host's, the
// box's, or another (a parent of the box's).
func owner(v, hostUser, boxUser uint32) string {
	switch {
	case v == 0:
		return "-"
	case v == hostUser:
		return inode(v) + " host's"
	case v == boxUser:
		return inode(v) + " box's"
	}
	return inode(v)
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
