package viz

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives/rootfs"
)

// mountDiffRowsMax keeps `mounts --diff` on a screen: after pivot_root
// every host mount is gone from the box.
const mountDiffRowsMax = 40

// MountsPanel lists a mount table as findmnt does: each mount point
// indented under its parent, with filesystem type, source, per-mount
// options and propagation.
func MountsPanel(tbl rootfs.MountTable, width int, t Theme) string {
	width = max(width, 40)
	count := quantity(tbl.Count(), "mount")
	if tbl.Cut != "" {
		count += " read" // of more: the read stopped
	}
	title := t.Title.Render(truncate(fmt.Sprintf("mounts of PID %d · %s", tbl.PID, count), width))
	cut := ""
	if tbl.Cut != "" {
		// The read stopped: the count above is of the mounts read.
		cut = para(t.Warn, "stopped reading: "+tbl.Cut, width)
	}
	if len(tbl.Mounts) == 0 {
		return lines(title, cut)
	}
	// Only the rows shown are built: a box may hold 100,000 mounts.
	shownMounts := tbl.Mounts[:min(len(tbl.Mounts), mountRowsMax)]
	depth := mountDepths(shownMounts)
	var rows [][]string
	for _, m := range shownMounts {
		target := strings.Repeat("  ", depth[m.ID]) + m.Point
		if m.Root != "/" {
			target += "[" + m.Root + "]" // findmnt's notation for a bind of a subdirectory
		}
		// Each cell on one line: a newline a box put in a source or a
		// mount point (mountinfo's "\012", decoded) shows as \n.
		row := []string{target, m.FSType, m.Source, m.Options, m.Propagation}
		for i, c := range row {
			row[i] = Escape(c)
		}
		rows = append(rows, row)
	}
	headers := []string{"target", "fstype", "source", "options", "propagation"}
	// Fit by hand, so paths lose their middle: the table's borders and
	// padding take 16 cells; options give way first.
	inner := width - 16
	w := make([]int, len(headers))
	for i, h := range headers {
		w[i] = lipgloss.Width(h)
		for _, r := range rows {
			w[i] = max(w[i], lipgloss.Width(r[i]))
		}
	}
	w[0], w[1], w[2], w[4] = min(w[0], inner*2/5), min(w[1], 10), min(w[2], inner/5), min(w[4], 11)
	w[3] = max(min(w[3], inner-w[0]-w[1]-w[2]-w[4]), 6)
	var body [][]string
	for _, r := range rows {
		body = append(body, []string{truncateMiddle(r[0], w[0]), truncate(r[1], w[1]), truncateMiddle(r[2], w[2]), truncate(r[3], w[3]), truncate(r[4], w[4])})
	}
	style := func(row, col int) lipgloss.Style {
		switch {
		case col == 0:
			return t.Same
		case col == 4 && strings.HasPrefix(tbl.Mounts[row].Propagation, "shared"):
			return t.Warn
		}
		return t.Dim
	}
	table := t.renderTable(headers, body, style, width)
	if tbl.Count() > len(rows) {
		table = lines(table, moreRows(t, tbl.Count(), len(rows), "mounts (`!cat /proc/$BOX_PID/mountinfo` lists every one)"))
	}
	if cut != "" {
		table = lines(table, cut)
	}
	return lines(title, table)
}

// mountDepths gives each mount's depth under the first mount (usually /).
func mountDepths(ms []rootfs.Mount) map[int]int {
	depth := map[int]int{}
	for _, m := range ms {
		if d, ok := depth[m.Parent]; ok {
			depth[m.ID] = d + 1
		} else {
			depth[m.ID] = 0
		}
	}
	return depth
}

// MountDiffPanel shows how a box's mount table differs from the host's:
// mounts the box added (+), the host's it no longer has (-), and mount
// points whose mount differs (~), host → box, with the fields that differ.
func MountDiffPanel(d rootfs.MountDiff, width int, t Theme) string {
	return mountDiffPanel(d, "box vs host", width, t)
}

// MountStepPanel shows what a step changed in the box's mount table: the
// same panel as MountDiffPanel, the box before the step on the left.
func MountStepPanel(d rootfs.MountDiff, width int, t Theme) string {
	return mountDiffPanel(d, "the box before → after", width, t)
}

func mountDiffPanel(d rootfs.MountDiff, what string, width int, t Theme) string {
	width = max(width, 40)
	added, removed, changed := d.Counts()
	title := para(t.Title, fmt.Sprintf("mounts · %s · %d added, %d removed, %d changed, %d the same",
		what, added, removed, changed, d.Same), width)
	if d.OldCut > 0 {
		// Pairing saw only the mounts kept of the older table.
		title = lines(title, para(t.Dim, fmt.Sprintf("compared with the first %d mounts of the %s only: %d more were not kept, and a mount among them shows here as new", rootfs.MountsKept, map[bool]string{true: "host's table", false: "table before the step"}[what == "box vs host"], d.OldCut), width))
	}
	if d.Cut != "" {
		// Only the mounts read were paired; none is called gone.
		title = lines(title, para(t.Warn, "stopped reading the box's table: "+d.Cut+"; the counts are of the mounts read", width))
	}
	if len(d.Added)+len(d.Removed)+len(d.Changed) == 0 {
		if what != "box vs host" {
			return lines(title, para(t.Dim, "no mount changed", width))
		}
		return lines(title, para(t.Dim, "the box's mount table is the host's", width))
	}
	type row struct {
		mark      rootfs.ChangeKind
		point     string
		text, box string // box: the box's side of a changed mount
	}
	var rows []row
	for _, c := range d.Changed {
		rows = append(rows, row{rootfs.CopiedUp, c.Box.Point, mountSide(c.Host, c), mountSide(c.Box, c)})
	}
	for _, m := range d.Added {
		side := mountSide(m, rootfs.MountChange{})
		if strings.HasPrefix(m.Options, "ro") {
			side += " ro" // read-only is what a security step is for
		}
		rows = append(rows, row{rootfs.Created, m.Point, side + "  new in the box", ""})
	}
	for _, m := range d.Removed {
		rows = append(rows, row{rootfs.Whiteout, m.Point, mountSide(m, rootfs.MountChange{}) + "  gone from the box", ""})
	}
	pointW := 0
	for i, r := range rows {
		rows[i].point = Escape(r.point)
		pointW = max(pointW, lipgloss.Width(rows[i].point))
	}
	pointW = min(pointW, width/3)
	textW := width - pointW - 6
	// Changed mounts show host → box on one line, or, if one of them
	// does not fit, each on two: host above, box below.
	oneLine := true
	for _, r := range rows {
		oneLine = oneLine && (r.box == "" || lipgloss.Width(r.text+" → "+r.box) <= textW)
	}
	out := []string{title}
	for i, r := range rows {
		if i == mountDiffRowsMax {
			break
		}
		style := map[rootfs.ChangeKind]lipgloss.Style{rootfs.Created: t.Added, rootfs.CopiedUp: t.Changed, rootfs.Whiteout: t.Deleted}[r.mark]
		head := "  " + style.Render(r.mark.String()+" "+padCell(truncateMiddle(r.point, pointW), pointW)) + "  "
		// What a mount is and how it differs folds under itself, never cut.
		under := strings.Repeat(" ", pointW+6)
		switch {
		case r.box == "":
			out = append(out, head+foldStyled(t.Dim, r.text, textW, textW, under))
		case oneLine:
			out = append(out, head+t.Dim.Render(r.text)+" → "+t.Changed.Render(r.box))
		default:
			out = append(out, head+foldStyled(t.Dim, r.text, textW, textW, under),
				strings.Repeat(" ", pointW+4)+"→ "+foldStyled(t.Changed, r.box, textW, textW, under))
		}
	}
	// Rows the diff counted but did not keep (rootfs.MountDiffKept) are
	// among those left out too.
	if total, shown := added+removed+changed, min(len(rows), mountDiffRowsMax); total > shown {
		out = append(out, t.Dim.Render(fmt.Sprintf("  … %d more", total-shown)))
	}
	return strings.Join(out, "\n")
}

// mountSide describes a mount for the diff: its filesystem and
// propagation, plus whichever fields differ in c (device, root, options),
// each escaped: the box chose them, an ESC or a newline too.
func mountSide(m rootfs.Mount, c rootfs.MountChange) string {
	parts := []string{m.FSType, m.Source}
	for _, what := range c.What {
		switch {
		case what == "device":
			parts = append(parts, "dev "+m.Dev)
		case what == "root":
			parts = append(parts, "root "+m.Root)
		case what == "options" && c.Host.Options != c.Box.Options:
			parts = append(parts, m.Options)
		}
	}
	parts = append(parts, m.Propagation)
	for i, p := range parts {
		parts[i] = Escape(p)
	}
	return strings.Join(parts, " ")
}
