package viz

import (
	"fmt"
	"maps"
	"math"
	"strings"

	"stepbox/primitives/cgroups"
)

// Geometry of a cgroup node's meters.
const (
	cgIndent = 22  // each level of the tree
	cgBarX   = 96  // where bars start, after the meter's name
	cgBarW   = 124 // a full bar: the limit
	cgBarH   = 18
	// cgValueCols is the room a meter's numbers get beside its bar.
	cgValueCols = 19.5
)

// CgroupSVG draws stepbox's cgroup tree: the session's parent cgroup and
// under it each box's cgroup with bars for memory, pids and cpu filled
// against their limits (an empty track where there is no limit), and the
// kernel's counters of refusals (forks refused, OOM kills, throttling).
// The box the snapshot is about is marked.
func CgroupSVG(snap cgroups.Snapshot) string { return cgroupSVG(snap, nil, wideSize) }

// cgroupSVG is CgroupSVG at size with the limits that differ from
// before's marked ★, as the live page draws them after `cgroup limit`.
func cgroupSVG(snap cgroups.Snapshot, before *cgroups.Snapshot, size svgSize) string {
	d := svgDoc{size: size}
	was, version := limitsBefore(before), cgroupVersion(snap)
	d.text(0, 22, "title", fit("cgroups · "+version+" · usage / limit", d.w(), svgTitle))
	y := 34
	parent := snap.Parent
	name := fit(parent.Name, 200, svgText)
	nameW := int(float64(len([]rune(name))+1)*svgText*svgCharEm) + 4
	d.add(`<g class="cgroup parent" data-cgroup="%s"><text x="4" y="%d"><tspan class="name">%s</tspan> <tspan class="dim">%s</tspan></text></g>`,
		esc(parent.Name), y+18, esc(name), esc(fit("stepbox's parent · "+processes(len(parent.Procs)), d.w()-nameW, d.size.small)))
	y += svgRow
	for _, c := range parent.Children {
		y = cgroupNode(&d, c, snap.BoxGroup, 1, y, was)
	}
	if parent.Unread > 0 {
		d.text(cgIndent, y+18, "dim", fit(unreadCgroups(parent.Unread), d.w()-cgIndent, d.size.small))
		y += svgRow
	}
	if len(parent.Children) == 0 {
		d.text(cgIndent, y+18, "dim", "no box cgroup yet")
		y += svgRow
	}
	d.h = y + 6
	return d.finish("cgroup", "cgroup tree")
}

// cgroupNode draws node n at depth, from y, and returns where it ends.
// A limit in was (keyed by cgroup/meter) that differs is marked.
func cgroupNode(d *svgDoc, n cgroups.Node, own string, depth, y int, was map[string]int64) int {
	x := depth * cgIndent
	class := "cgroup"
	if n.Name == own {
		class += " own"
	}
	procs := processes(len(n.Procs))
	d.add(`<g class="%s" data-cgroup="%s"><path class="branch" d="M%d %d V%d H%d"/><text x="%d" y="%d"><tspan class="name">%s</tspan> <tspan class="dim">%s</tspan></text>`,
		class, esc(n.Name), x-cgIndent+10, y, y+12, x-4, x, y+18, esc(fit(Escape(n.Name), d.w()-x-int(float64(len(procs))*d.size.small*svgCharEm)-16, svgText)), procs)
	y += svgRow
	var evs []string
	for _, m := range nodeMeters(n) {
		old, ok := was[n.Name+"/"+m.label]
		y = meterSVG(d, m, x+8, y, ok && old != m.max)
		if m.events != "" {
			evs = append(evs, m.events)
		}
	}
	if len(evs) > 0 {
		d.add(`<text x="%d" y="%d" class="events">%s</text>`, x+8, y+16, esc(fit(strings.Join(evs, " · "), d.w()-x-8, d.size.small)))
		y += svgRow - 6
	}
	d.add(`</g>`)
	for _, c := range n.Children {
		y = cgroupNode(d, c, own, depth+1, y, was)
	}
	if n.Unread > 0 {
		d.text(x+cgIndent, y+18, "dim", fit(unreadCgroups(n.Unread), d.w()-x-cgIndent, d.size.small))
		y += svgRow
	}
	return y + 4
}

// meterSVG draws one meter: its name, a bar filled to usage/limit, and
// the numbers.
// A changed limit is starred and its bar's class has "changed".
func meterSVG(d *svgDoc, m usageMeter, x, y int, changed bool) int {
	level, maxAttr, text := meterLevel(m, changed)
	// The bar gives way to the numbers: "0.00 CPU (no limit)" fits.
	barW := max(60, min(cgBarW, d.w()-x-cgBarX-8-int(cgValueCols*d.size.small*svgCharEm)))
	fill := 0
	if !math.IsNaN(m.frac) {
		fill = int(math.Round(math.Max(0, math.Min(1, m.frac)) * float64(barW)))
	}
	barX := x + cgBarX
	textX := barX + barW + 8
	d.add(`<g class="bar %s" data-resource="%s" data-current="%d" data-max="%s"><text x="%d" y="%d" class="meter">%s</text><rect class="track" x="%d" y="%d" width="%d" height="%d" rx="3"/><rect class="fill" x="%d" y="%d" width="%d" height="%d" rx="3"/><text x="%d" y="%d" class="value">%s</text></g>`,
		level, m.label, m.cur, maxAttr, x, y+15, m.label, barX, y+2, barW, cgBarH, barX, y+2, fill, cgBarH, textX, y+15, esc(fit(text, d.w()-textX, d.size.small)))
	return y + svgRow - 4
}

// cgroupNarrowSVG is the cgroup beside a second box: the box's own
// cgroup and those under it, each meter's name and numbers on a line
// and its bar under them across the drawing; a changed limit starred.
func cgroupNarrowSVG(snap cgroups.Snapshot, before *cgroups.Snapshot) string {
	d := svgDoc{size: narrowSide}
	was, version := limitsBefore(before), cgroupVersion(snap)
	d.text(0, 22, "title", fit("cgroup · "+version, d.w(), svgTitle))
	y := 34
	var node func(n cgroups.Node, x int)
	node = func(n cgroups.Node, x int) {
		class := "cgroup"
		if n.Name == snap.BoxGroup {
			class += " own"
		}
		d.add(`<g class="%s" data-cgroup="%s"><text x="%d" y="%d"><tspan class="name">%s</tspan></text>`,
			class, esc(n.Name), x, y+18, esc(fit(Escape(n.Name), d.w()-x, svgText)))
		d.text(x, y+42, "dim", processes(len(n.Procs)))
		y += 2 * svgRow
		var evs []string
		for _, m := range nodeMeters(n) {
			old, ok := was[n.Name+"/"+m.label]
			y = meterNarrowSVG(&d, m, x, y, ok && old != m.max)
			if m.events != "" {
				evs = append(evs, m.events)
			}
		}
		for _, e := range evs {
			d.add(`<text x="%d" y="%d" class="events">%s</text>`, x, y+16, esc(fit(e, d.w()-x, svgSmallNarrow)))
			y += svgRow - 6
		}
		d.add(`</g>`)
		for _, c := range n.Children {
			node(c, x+cgIndent/2)
		}
	}
	for _, c := range snap.Parent.Children {
		node(c, 0)
	}
	if len(snap.Parent.Children) == 0 {
		d.text(0, y+18, "dim", "no box cgroup yet")
		y += svgRow
	}
	d.h = y + 4
	return d.finish("cgroup", "the box's cgroup")
}

// meterNarrowSVG draws one meter in two lines: its name and numbers,
// then its bar across the drawing from x.
func meterNarrowSVG(d *svgDoc, m usageMeter, x, y int, changed bool) int {
	level, maxAttr, text := meterLevel(m, changed)
	// "0.00 CPU (no limit)" is a character too long for the width.
	text = strings.Replace(text, " (no limit)", ", no limit", 1)
	barW := d.w() - x - 2
	fill := 0
	if !math.IsNaN(m.frac) {
		fill = int(math.Round(math.Max(0, math.Min(1, m.frac)) * float64(barW)))
	}
	nameW := int(float64(len(m.label)+1) * svgSmallNarrow * svgCharEm)
	d.add(`<g class="bar %s" data-resource="%s" data-current="%d" data-max="%s"><text x="%d" y="%d" class="meter">%s</text><text x="%d" y="%d" class="value" text-anchor="end">%s</text><rect class="track" x="%d" y="%d" width="%d" height="%d" rx="3"/><rect class="fill" x="%d" y="%d" width="%d" height="%d" rx="3"/></g>`,
		level, m.label, m.cur, maxAttr, x, y+16, m.label, d.w()-2, y+16, esc(fit(text, d.w()-2-x-nameW, svgSmallNarrow)),
		x+1, y+22, barW, cgBarH-6, x+1, y+22, fill, cgBarH-6)
	return y + 44
}

// meterLevel is a meter's class (how full, and whether its limit
// changed), its limit as data-max, and its numbers (starred if changed).
func meterLevel(m usageMeter, changed bool) (level, maxAttr, text string) {
	level = "nolimit"
	if !math.IsNaN(m.frac) {
		switch f := math.Max(0, math.Min(1, m.frac)); {
		case f >= 1:
			level = "full"
		case f >= 0.8:
			level = "high"
		default:
			level = "ok"
		}
	}
	maxAttr = "max"
	if m.max != cgroups.Unlimited {
		maxAttr = fmt.Sprint(m.max)
	}
	text = m.text
	if changed {
		level += " changed"
		text = "★ " + text
	}
	return level, maxAttr, text
}

// limitsBefore is every limit in before, keyed by cgroup/meter; none
// without a before.
func limitsBefore(before *cgroups.Snapshot) map[string]int64 {
	was := map[string]int64{}
	if before != nil {
		limits(before.Parent, was)
	}
	return was
}

// cgroupVersion is "v1" or "v2", as the drawing's title says.
func cgroupVersion(snap cgroups.Snapshot) string {
	if snap.Mode.Version() == 1 {
		return "v1"
	}
	return "v2"
}

// limits gathers the limit of every meter under n into out, keyed by
// cgroup/meter.
func limits(n cgroups.Node, out map[string]int64) {
	for _, m := range nodeMeters(n) {
		out[n.Name+"/"+m.label] = m.max
	}
	for _, c := range n.Children {
		limits(c, out)
	}
}

// SameLimits reports whether a and b set the same limits on the same
// cgroups: usage may differ, a limit a step set may not.
func SameLimits(a, b cgroups.Snapshot) bool {
	la, lb := map[string]int64{}, map[string]int64{}
	limits(a.Parent, la)
	limits(b.Parent, lb)
	return maps.Equal(la, lb)
}

// processes says "1 process", "3 processes".
func processes(n int) string {
	if n == 1 {
		return "1 process"
	}
	return fmt.Sprintf("%d processes", n)
}
