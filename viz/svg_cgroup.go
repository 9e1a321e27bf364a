package viz

import (
	"fmt"
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
)

// CgroupSVG draws stepbox's cgroup tree: the session's parent cgroup and
// under it each box's cgroup with bars for memory, pids and cpu filled
// against their limits (an empty track where there is no limit), and the
// kernel's counters of refusals (forks refused, OOM kills, throttling).
// The box the snapshot is about is marked.
func CgroupSVG(snap cgroups.Snapshot) string { return cgroupSVG(snap, nil) }

// cgroupSVG is CgroupSVG with the limits that differ from before's
// marked ★, as the live page draws them after `cgroup limit`.
func cgroupSVG(snap cgroups.Snapshot, before *cgroups.Snapshot) string {
	var d svgDoc
	was := map[string]int64{}
	if before != nil {
		limits(before.Parent, was)
	}
	version := "v2"
	if snap.Mode.Version() == 1 {
		version = "v1"
	}
	d.text(0, 22, "title", fit("cgroups · "+version+" · usage / limit", svgW, svgTitle))
	y := 34
	parent := snap.Parent
	d.add(`<g class="cgroup parent" data-cgroup="%s"><text x="4" y="%d"><tspan class="name">%s</tspan> <tspan class="dim">stepbox's parent · %s</tspan></text></g>`,
		esc(parent.Name), y+18, esc(fit(parent.Name, 200, svgText)), processes(len(parent.Procs)))
	y += svgRow
	for _, c := range parent.Children {
		y = cgroupNode(&d, c, snap.BoxGroup, 1, y, was)
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
		class, esc(n.Name), x-cgIndent+10, y, y+12, x-4, x, y+18, esc(fit(n.Name, svgW-x-int(float64(len(procs))*svgSmall*svgCharEm)-16, svgText)), procs)
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
		d.add(`<text x="%d" y="%d" class="events">%s</text>`, x+8, y+16, esc(fit(strings.Join(evs, " · "), svgW-x-8, svgSmall)))
		y += svgRow - 6
	}
	d.add(`</g>`)
	for _, c := range n.Children {
		y = cgroupNode(d, c, own, depth+1, y, was)
	}
	return y + 4
}

// meterSVG draws one meter: its name, a bar filled to usage/limit, and
// the numbers.
// A changed limit is starred and its bar's class has "changed".
func meterSVG(d *svgDoc, m usageMeter, x, y int, changed bool) int {
	level, fill := "nolimit", 0
	if !math.IsNaN(m.frac) {
		f := math.Max(0, math.Min(1, m.frac))
		fill = int(math.Round(f * cgBarW))
		switch {
		case f >= 1:
			level = "full"
		case f >= 0.8:
			level = "high"
		default:
			level = "ok"
		}
	}
	maxAttr := "max"
	if m.max != cgroups.Unlimited {
		maxAttr = fmt.Sprint(m.max)
	}
	if changed {
		level += " changed"
		m.text = "★ " + m.text
	}
	barX := x + cgBarX
	textX := barX + cgBarW + 8
	d.add(`<g class="bar %s" data-resource="%s" data-current="%d" data-max="%s"><text x="%d" y="%d" class="meter">%s</text><rect class="track" x="%d" y="%d" width="%d" height="%d" rx="3"/><rect class="fill" x="%d" y="%d" width="%d" height="%d" rx="3"/><text x="%d" y="%d" class="value">%s</text></g>`,
		level, m.label, m.cur, maxAttr, x, y+15, m.label, barX, y+2, cgBarW, cgBarH, barX, y+2, fill, cgBarH, textX, y+15, esc(fit(m.text, svgW-textX, svgSmall)))
	return y + svgRow - 4
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

// processes says "1 process", "3 processes".
func processes(n int) string {
	if n == 1 {
		return "1 process"
	}
	return fmt.Sprintf("%d processes", n)
}
