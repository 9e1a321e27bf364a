package viz

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// Limits that keep the stack panel on a screen.
const (
	stackLayersShown = 12 // lowers drawn in full; taller stacks show their top and bottom
	stackEdgeLayers  = 5  // lowers drawn at each end of a taller stack
	stackChangesMax  = 30 // lines of the upper dir's changes
	stackFilesMax    = 40 // lines of path → layer

	// After `mount overlay` the stack shares the screen with the step.
	stepLayersShown = 5
	stepEdgeLayers  = 2
)

// StackPanel draws a box's layer stack as stacked boxes — the merged view
// on top, then the upper dir, then each lower down to the base — each
// with its host path; then the upper dir's changes (+ created, ~ copied
// up, - whiteout) and, when the snapshot has them, each path's layer.
func StackPanel(snap rootfs.StackSnapshot, width int, t Theme) string {
	width = max(width, 40)
	out := []string{para(t.Title, "layer stack · "+quantity(len(snap.Lowers), "layer")+" + upper", width)}
	out = append(out, stackBoxes(snap, stackLayersShown, stackEdgeLayers, width, t)...)
	out = append(out, stackChanges(snap, width, t)...)
	out = append(out, stackSkipped(snap, width, t)...)
	if snap.Files != nil {
		out = append(out, stackFiles(snap, width, t)...)
	}
	return t.withStateNote(strings.Join(out, "\n"), width)
}

// StackStepPanel is the stack as `mount overlay` shows it, on one screen
// with the step: a stack taller than five layers shows its top two and
// bottom two, and names `stack`, which draws every layer.
func StackStepPanel(snap rootfs.StackSnapshot, width int, t Theme) string {
	if len(snap.Lowers) <= stepLayersShown {
		return StackPanel(snap, width, t)
	}
	width = max(width, 40)
	out := []string{para(t.Title, "layer stack · "+quantity(len(snap.Lowers), "layer")+" + upper", width)}
	out = append(out, stackBoxes(snap, stepLayersShown, stepEdgeLayers, width, t)...)
	out = append(out, stackChanges(snap, width, t)...)
	out = append(out, stackSkipped(snap, width, t)...)
	out = append(out, para(t.Dim, "`stack` draws every layer", width))
	return t.withStateNote(strings.Join(out, "\n"), width)
}

// stackRow is one box of the stack: name, host path, and a note.
type stackRow struct {
	name, path, note string
	gap              bool // a "… N more layers" row, not a layer
}

// stackBoxes draws the stack; taller than shown lowers, it draws edge at
// the top and edge at the bottom, and counts the ones between.
func stackBoxes(snap rootfs.StackSnapshot, shown, edge, width int, t Theme) []string {
	merged := "the box's / after pivot_root"
	if snap.Entered {
		merged = "the box's /"
	}
	rows := []stackRow{
		{name: "merged", path: t.short(snap.Merged), note: merged},
		{name: rootfs.UpperName, path: t.short(snap.Upper.Dir), note: "rw · " + quantity(len(snap.Changes), "change")},
	}
	lowers := snap.Lowers
	for i := len(lowers) - 1; i >= 0; i-- {
		if len(lowers) > shown && i == len(lowers)-1-edge {
			// lowers[edge] … lowers[i] are left out; lowers[edge-1] is next.
			hidden := i - edge + 1
			rows = append(rows, stackRow{name: "⋮", path: fmt.Sprintf("%s (%s … %s)", quantity(hidden, "more layer"), lowers[edge].Name, lowers[i].Name), gap: true})
			i = edge - 1
		}
		l := lowers[i]
		note := "ro · " + quantity(l.Files, "file")
		if l.Whiteouts > 0 {
			note += " · " + quantity(l.Whiteouts, "whiteout")
		}
		if l.Origin != "" {
			note += " · " + l.Origin
		}
		rows = append(rows, stackRow{name: l.Name, path: t.short(l.Dir), note: note})
	}

	nameW, pathW, noteW := 0, 0, 0
	for _, r := range rows {
		nameW = max(nameW, lipgloss.Width(r.name))
		pathW = max(pathW, lipgloss.Width(r.path))
		noteW = max(noteW, lipgloss.Width(r.note))
	}
	nameW = min(nameW, 16)
	// "│ " name "  " path "  " note " │": paths give way first, then notes.
	if budget := width - 8; nameW+pathW+noteW > budget {
		pathW = max(budget-nameW-noteW, 8)
		noteW = min(noteW, max(budget-nameW-pathW, 0))
	}
	inner := nameW + 2 + pathW + 2 + noteW
	bar := strings.Repeat("─", inner+2)
	b := t.Border.Render
	out := []string{b("┌" + bar + "┐")}
	for i, r := range rows {
		if i > 0 {
			out = append(out, b("├"+bar+"┤"))
		}
		var cells string
		if r.gap {
			cells = t.Dim.Render(padCell(truncate(r.name, nameW), nameW) + "  " + padCell(truncate(r.path, pathW+2+noteW), pathW+2+noteW))
		} else {
			note := t.Dim
			if r.name == rootfs.UpperName && len(snap.Changes) > 0 {
				note = t.Changed
			}
			cells = t.Title.Render(padCell(truncate(r.name, nameW), nameW)) + "  " +
				t.Dim.Render(padCell(truncateMiddle(r.path, pathW), pathW)) + "  " +
				note.Render(padCell(truncate(r.note, noteW), noteW))
		}
		out = append(out, b("│ ")+cells+b(" │"))
	}
	return append(out, b("└"+bar+"┘"))
}

// stackSkipped says which layers were not read whole: a box (or an
// image) can nest directories past PATH_MAX or make millions of files.
func stackSkipped(snap rootfs.StackSnapshot, width int, t Theme) []string {
	var out []string
	for _, l := range append([]rootfs.LayerInfo{snap.Upper}, snap.Lowers...) {
		if l.Skipped != "" {
			out = append(out, para(t.Changed, "not all of "+Escape(l.Name)+" was read: "+Escape(l.Skipped), width))
		}
	}
	return out
}

func stackChanges(snap rootfs.StackSnapshot, width int, t Theme) []string {
	if len(snap.Changes) == 0 {
		return []string{para(t.Dim, "no changes in the upper dir yet: the box sees the layers as they are", width)}
	}
	out := []string{para(t.Title, "changes in the upper dir", width)}
	pathW := 0
	for _, c := range snap.Changes {
		pathW = max(pathW, lipgloss.Width(changePath(c)))
	}
	pathW = min(pathW, width*3/5)
	for i, c := range snap.Changes {
		if i == stackChangesMax {
			out = append(out, t.Dim.Render(fmt.Sprintf("  … %d more", len(snap.Changes)-i)))
			break
		}
		style := map[rootfs.ChangeKind]lipgloss.Style{rootfs.Created: t.Added, rootfs.CopiedUp: t.Copied, rootfs.Whiteout: t.Deleted}[c.Kind]
		why := changeWhy(c)
		p := truncateMiddle(changePath(c), pathW)
		out = append(out, "  "+style.Render(c.Kind.String()+" "+padCell(p, pathW))+"  "+t.Dim.Render(truncate(why, width-pathW-6)))
	}
	return out
}

func changePath(c rootfs.Change) string {
	if c.Dir {
		return Escape(c.Path) + "/"
	}
	return Escape(c.Path)
}

// changeWhy says what an upper dir entry does, in the learner's words.
func changeWhy(c rootfs.Change) string {
	switch {
	case c.Opaque && c.Below != "":
		return "opaque: hides " + c.Below + "'s and every lower layer's contents"
	case c.Kind == rootfs.Created:
		return "created"
	case c.Kind == rootfs.CopiedUp:
		return "copied up from " + c.Below
	case c.Below != "":
		return "whiteout: hides " + c.Below + "'s"
	}
	return "whiteout (hides nothing below)"
}

func stackFiles(snap rootfs.StackSnapshot, width int, t Theme) []string {
	count := map[string]int{}
	layerW := 0
	for _, f := range snap.Files {
		count[f.Layer]++
		layerW = max(layerW, lipgloss.Width(f.Layer))
	}
	var per []string
	for _, l := range append([]rootfs.LayerInfo{snap.Upper}, topFirst(snap.Lowers)...) {
		if n := count[l.Name]; n > 0 {
			per = append(per, fmt.Sprintf("%s %d", l.Name, n))
		}
	}
	head := fmt.Sprintf("%s in the merged view (%s)", quantity(len(snap.Files), "path"), strings.Join(per, " · "))
	out := []string{para(t.Title, head, width)}
	pathW := 0
	for _, f := range snap.Files[:min(len(snap.Files), stackFilesMax)] {
		pathW = max(pathW, lipgloss.Width(Escape(f.Path))+1)
	}
	pathW = min(pathW, width-2-2-layerW)
	for i, f := range snap.Files {
		if i == stackFilesMax {
			out = append(out, t.Dim.Render(fmt.Sprintf("  … %d more", len(snap.Files)-i)))
			break
		}
		p := Escape(f.Path)
		if f.Dir {
			p += "/"
		}
		style := t.Dim
		if f.Layer == rootfs.UpperName {
			style = t.Changed
		}
		out = append(out, "  "+padCell(truncateMiddle(p, pathW), pathW)+"  "+style.Render(f.Layer))
	}
	return out
}

// topFirst lists layers top first.
func topFirst(ls []rootfs.LayerInfo) []rootfs.LayerInfo {
	out := make([]rootfs.LayerInfo, len(ls))
	for i, l := range ls {
		out[len(ls)-1-i] = l
	}
	return out
}

// quantity says n nouns, e.g. "1 file", "3 files".
func quantity(n int, noun string) string { return step.Count(n, noun) }
