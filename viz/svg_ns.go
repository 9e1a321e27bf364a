package viz

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"stepbox/primitives"
)

// Limits that keep the namespace drawing on a projector's screen.
const (
	nsProcsShown = 6 // commands drawn inside the innermost frame
	nsChipH      = 26
)

// nsChip is one namespace: its inode, the types it covers (pid and
// pid_for_children are one namespace when they share an inode), and
// whether the last step made it.
type nsChip struct {
	types   []string
	inode   uint32
	changed bool
}

// procChip is one process: its label, host PID and PID in the box.
type procChip struct {
	label       string
	pid, boxPID int
	depth       int
	role        string
}

// nsFrame is one set of namespaces drawn around the processes in it.
type nsFrame struct {
	class, label string
	short        string // the label where the whole one does not fit
	chips        []nsChip
	procs        []procChip
	inner        *nsFrame
}

// NamespaceSVG draws the box's processes inside nested frames of the
// namespaces they are in: the host's around the session, the box's own
// around the box process, and PID 1's own (pid, time: they apply to
// children) around PID 1 and its commands. Each namespace is a chip with
// its inode and the types it covers (pid and pid_for_children sharing an
// inode are one namespace, drawn once with both types); the ones the last step made (they differ from
// before) are marked. procs is the box process's subtree, or nil.
func NamespaceSVG(s primitives.NamespaceSnapshot, before *primitives.NamespaceSnapshot, procs *primitives.ProcessNode) string {
	return namespaceSVG(s, before, procs, wideSize)
}

// namespaceSVG is NamespaceSVG at size.
func namespaceSVG(s primitives.NamespaceSnapshot, before *primitives.NamespaceSnapshot, procs *primitives.ProcessNode, size svgSize) string {
	prev := map[string]primitives.NamespaceRow{}
	if before != nil && before.BoxPID == s.BoxPID {
		for _, r := range before.Rows {
			prev[r.Type] = r
		}
	}
	host := &nsFrame{class: "host", label: fmt.Sprintf("host's namespaces · the session, PID %d", s.HostPID),
		short: fmt.Sprintf("host · the session, PID %d", s.HostPID)}
	box := &nsFrame{class: "boxns", label: fmt.Sprintf("box %s · namespaces of its own", s.Box)}
	host.procs = []procChip{{label: "stepbox session", pid: s.HostPID, boxPID: s.HostPID, role: "session"}}
	host.inner = box
	var init *nsFrame
	if s.InitPID != 0 {
		init = &nsFrame{class: "initns", label: "PID 1 · the box's *_for_children", short: "PID 1 · *_for_children"}
		box.inner = init
	}
	// Each type goes in the frame of the innermost process in it; a
	// *_for_children row joins its type's chip when they share an inode,
	// or is a chip of its own (after `unshare pid`, before PID 1).
	type at struct {
		f *nsFrame
		i int
	}
	where := map[string]at{}
	place := func(f *nsFrame, c nsChip) {
		f.chips = append(f.chips, c)
		where[c.types[0]] = at{f, len(f.chips) - 1}
	}
	for _, r := range s.Rows {
		if strings.HasSuffix(r.Type, "_for_children") {
			continue
		}
		was, had := prev[r.Type]
		switch {
		case init != nil && r.Init != 0 && r.Init != r.Box:
			place(init, nsChip{types: []string{r.Type}, inode: r.Init, changed: had && was.Init != r.Init})
		case r.Box != 0 && r.Box != r.Host:
			place(box, nsChip{types: []string{r.Type}, inode: r.Box, changed: had && was.Box != r.Box})
		default:
			place(host, nsChip{types: []string{r.Type}, inode: r.Host})
		}
	}
	for _, r := range s.Rows {
		base, ok := strings.CutSuffix(r.Type, "_for_children")
		if !ok {
			continue
		}
		was, had := prev[r.Type]
		inode, changed := r.Box, had && was.Box != r.Box
		if init != nil && r.Init != 0 {
			inode, changed = r.Init, had && was.Init != r.Init
		}
		if a, ok := where[base]; ok && a.f.chips[a.i].inode == inode {
			c := &a.f.chips[a.i]
			c.types = append(c.types, r.Type)
			// The host's namespaces are never the step's.
			c.changed = c.changed || (a.f != host && changed)
			continue
		}
		c := nsChip{types: []string{r.Type}, inode: inode, changed: changed}
		switch {
		case init != nil && r.Init != 0 && r.Init != r.Box:
			init.chips = append(init.chips, c)
		case r.Box != 0 && r.Box != r.Host:
			box.chips = append(box.chips, c)
		default:
			c.inode, c.changed = r.Host, false
			host.chips = append(host.chips, c)
		}
	}
	if len(box.chips) == 0 {
		box.label = fmt.Sprintf("box %s · shares the host's namespaces", s.Box)
		box.short = fmt.Sprintf("box %s · none of its own", s.Box)
		box.class += " none"
	}
	box.procs = boxProcs(s, procs, init)
	d := svgDoc{size: size}
	top := 0
	if !size.untitled {
		d.text(0, 22, "title", fit("namespaces around processes", size.w, svgTitle))
		top = 34
	}
	body, h := host.draw(size.w, size)
	d.add(`<g transform="translate(0,%d)">%s</g>`, top, body)
	d.h = top + h + 2
	if strings.Contains(body, "ns changed") {
		d.text(4, d.h+18, "dim", "★ made by the last step")
		d.h += 26
	}
	return d.finish("ns-"+s.Box, "namespaces of box "+s.Box)
}

// boxProcs places the box's processes: the box process in the box's
// frame; PID 1 and its commands in PID 1's, or, without a PID 1, the
// commands beside the box process.
func boxProcs(s primitives.NamespaceSnapshot, root *primitives.ProcessNode, init *nsFrame) []procChip {
	boxChip := procChip{label: "box process", pid: s.BoxPID, boxPID: s.BoxPID, role: "box"}
	if init != nil {
		init.procs = []procChip{{label: "PID 1 (init)", pid: s.InitPID, boxPID: 1, role: "init"}}
	}
	if root == nil {
		return []procChip{boxChip}
	}
	var cmds []procChip
	var initNode *primitives.ProcessNode
	var walk func(n *primitives.ProcessNode, depth int)
	walk = func(n *primitives.ProcessNode, depth int) {
		for _, c := range n.Children {
			if c.Role == "PID 1" {
				initNode = c
				continue
			}
			cmds = append(cmds, procChip{label: processLabel(c), pid: c.PID, boxPID: c.BoxPID(), depth: depth, role: "cmd"})
			walk(c, depth+1)
		}
	}
	// Commands outside PID 1 (before `unshare pid`, or `enter`) stay
	// beside the box process; walking the box process finds PID 1.
	walk(root, 1)
	out := append([]procChip{boxChip}, cmds...)
	if init != nil && initNode != nil {
		cmds = nil
		walk(initNode, 1)
		init.procs = append(init.procs, cmds...)
	}
	return out
}

// draw lays frame f out in width w, at size (its padding and secondary
// text): its label, its namespace chips two
// to a row, its processes one to a row, then the frame inside it.
func (f *nsFrame) draw(w int, size svgSize) (string, int) {
	var b strings.Builder
	nsFramePad, small, gap := size.pad, size.small, size.gap
	y := 24 - (6 - gap)
	label := f.label
	if f.short != "" && fit(label, w-2*nsFramePad, small) != label {
		label = f.short
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" class="label">%s</text>`, nsFramePad, y, esc(fit(label, w-2*nsFramePad, small)))
	y += 4 + gap
	chipW := (w - 2*nsFramePad - 8) / 2
	// A chip whose label and inode overflow half a row takes a whole one;
	// those go after the others, which pair up two to a row.
	wide := func(c nsChip) bool {
		return float64(len(strings.Join(c.types, " · "))+12)*16*svgCharEm > float64(chipW)
	}
	chips := slices.Clone(f.chips)
	slices.SortStableFunc(chips, func(a, b nsChip) int { return cmp.Compare(b2i(wide(a)), b2i(wide(b))) })
	col := 0 // the next chip's column: 0, 1, or 2 for a new row
	for i, c := range chips {
		label := strings.Join(c.types, " · ")
		cw := chipW
		if wide(c) {
			cw = w - 2*nsFramePad
		}
		if i > 0 && (col == 2 || cw > chipW) {
			y += nsChipH + gap
			col = 0
		}
		x := nsFramePad + col*(chipW+8)
		col++
		if cw > chipW {
			col = 2
		}
		class := "ns"
		mark := ""
		if c.changed {
			class, mark = "ns changed", " ★"
		}
		// A chip's text a little too long for it is drawn narrower, not
		// smaller: its glyphs keep their height.
		squeeze := ""
		if tw := float64(len([]rune(label))+11+len([]rune(mark))) * 16 * svgCharEm; tw > float64(cw-12) {
			squeeze = fmt.Sprintf(` textLength="%d" lengthAdjust="spacingAndGlyphs"`, cw-12)
		}
		fmt.Fprintf(&b, `<g class="%s" data-type="%s" data-types="%s" data-inode="%d" data-owner="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="5"/><text x="%d" y="%d"%s><tspan class="nstype">%s</tspan> %d%s</text></g>`,
			class, esc(c.types[0]), esc(strings.Join(c.types, " ")), c.inode, esc(strings.Fields(f.class)[0]), x, y, cw, nsChipH, x+8, y+19, squeeze, esc(label), c.inode, mark)
	}
	if len(f.chips) > 0 {
		y += nsChipH + gap + 2
	}
	shown := f.procs
	if len(shown) > nsProcsShown {
		shown = shown[:nsProcsShown]
	}
	for _, p := range shown {
		x := nsFramePad + 14*p.depth
		pids := fmt.Sprintf("%d", p.pid)
		if p.boxPID != p.pid {
			pids = fmt.Sprintf("%d → %d", p.pid, p.boxPID)
		}
		// The name is drawn at body size: measured at it, it never runs
		// into the PID.
		label := fit(p.label, w-x-nsFramePad-int(float64(utf8.RuneCountInString(pids)+2)*small*svgCharEm)-14, svgText)
		fmt.Fprintf(&b, `<g class="proc %s" data-pid="%d" data-boxpid="%d"><rect x="%d" y="%d" width="%d" height="%d" rx="13"/><text x="%d" y="%d">%s</text><text x="%d" y="%d" class="pid">%s</text></g>`,
			esc(p.role), p.pid, p.boxPID, x, y, w-x-nsFramePad, nsChipH, x+10, y+19, esc(label), w-nsFramePad-10, y+19, pids)
		y += nsChipH + gap
	}
	if more := len(f.procs) - len(shown); more > 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" class="dim">… %d more processes (ps lists them)</text>`, nsFramePad, y+16, more)
		y += nsChipH
	}
	if f.inner != nil {
		body, h := f.inner.draw(w-2*nsFramePad, size)
		fmt.Fprintf(&b, `<g transform="translate(%d,%d)">%s</g>`, nsFramePad, y, body)
		y += h + gap
	}
	y += gap
	frame := fmt.Sprintf(`<rect class="frame %s" x="1" y="1" width="%d" height="%d" rx="10"/>`, f.class, w-2, y-2)
	return frame + b.String(), y
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
