package viz

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

// cgroupSideBySide is the narrowest terminal that shows the host's and the
// box's view of /proc/PID/cgroup next to each other; narrower stacks them.
const cgroupSideBySide = 110

// CgroupPanel draws stepbox's cgroup tree from its parent down, each
// cgroup's limits and live usage as bars, and where the box's process
// sits: /proc/PID/cgroup as the host sees it and, after `unshare cgroup`,
// as the box sees it.
func CgroupPanel(snap cgroups.Snapshot, width int, t Theme) string {
	width = max(width, 40)
	out := []string{
		para(t.Title, "cgroups · "+snap.Mode.String(), width),
	}
	out = append(out, parentPlaces(snap.Parent.Group, width, t)...)
	out = append(out, "")
	out = append(out, cgroupTree(snap, width, t)...)
	if snap.Box != "" {
		out = append(out, "")
		out = append(out, membership(snap, width, t)...)
	}
	return strings.Join(out, "\n")
}

// parentPlaces says where the parent sits: in v1 the same name can sit at
// a different path in each hierarchy (the session's memory cgroup, say).
func parentPlaces(g cgroups.Group, width int, t Theme) []string {
	var paths []string
	in := map[string][]string{}
	for _, d := range g.Dirs {
		if _, ok := in[d.Cgroup]; !ok {
			paths = append(paths, d.Cgroup)
		}
		if d.Hierarchy != "" {
			in[d.Cgroup] = append(in[d.Cgroup], d.Hierarchy)
		}
	}
	var out []string
	for _, p := range paths {
		line := "  " + Escape(p) // a cgroup the box may have made and named
		if hs := in[p]; len(hs) > 0 && len(paths) > 1 {
			line += "  (" + strings.Join(hs, " ") + ")"
		} else if len(hs) > 0 {
			line += "  (every hierarchy)"
		}
		out = append(out, t.Dim.Render(truncateMiddle(line, width)))
	}
	return out
}

func cgroupTree(snap cgroups.Snapshot, width int, t Theme) []string {
	var out []string
	var walk func(n cgroups.Node, head, body string)
	walk = func(n cgroups.Node, head, body string) {
		out = append(out, nodeLine(n, snap, head, width, t))
		stats := statLines(n, width-lipgloss.Width(body)-2, t)
		tail := body + "│ "
		if len(n.Children) == 0 && n.Unread == 0 {
			tail = body + "  "
		}
		for _, l := range stats {
			out = append(out, t.Border.Render(tail)+l)
		}
		for i, c := range n.Children {
			if i == len(n.Children)-1 && n.Unread == 0 {
				walk(c, body+"└─ ", body+"   ")
			} else {
				walk(c, body+"├─ ", body+"│  ")
			}
		}
		if n.Unread > 0 {
			out = append(out, t.Border.Render(body+"└─ ")+t.Dim.Render(truncate(unreadCgroups(n.Unread), width-lipgloss.Width(body)-3)))
		}
	}
	walk(snap.Parent, "", "")
	if len(snap.Parent.Children) == 0 {
		out = append(out, para(t.Dim, "  no box cgroups yet: cgroup new makes one", width))
	}
	return out
}

// unreadCgroups says how many child cgroups a snapshot left unread.
func unreadCgroups(n int) string {
	return fmt.Sprintf("… %s more, not read (a panel reads %d children of a cgroup, %d cgroups, %d levels)",
		groupCount(n), cgroups.TreeChildren, cgroups.TreeNodes, cgroups.TreeDepth)
}

func groupCount(n int) string {
	if n == 1 {
		return "1 cgroup"
	}
	return strconv.Itoa(n) + " cgroups"
}

// nodeLine is a cgroup's name, its box if it is the current one, and the
// PIDs in it (the host's PIDs, as its cgroup.procs lists them).
func nodeLine(n cgroups.Node, snap cgroups.Snapshot, head string, width int, t Theme) string {
	name := Escape(n.Name) // a box with its cgroup delegated names its children
	mark := ""
	if n.Name == snap.BoxGroup && snap.BoxGroup != "" {
		mark = "  ◀ box " + snap.Box
	}
	procs := "  procs " + procList(n.Procs)
	room := width - lipgloss.Width(head) - lipgloss.Width(name) - lipgloss.Width(mark)
	line := t.Border.Render(head) + t.Title.Render(truncate(name, width-lipgloss.Width(head)))
	if mark != "" && room > 0 {
		line += t.Changed.Render(truncate(mark, room))
	}
	if room-lipgloss.Width(mark) > 0 {
		line += t.Dim.Render(truncate(procs, room-lipgloss.Width(mark)))
	}
	return line
}

func procList(ps []int) string {
	if len(ps) == 0 {
		return "—"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, " ")
}

// meter is one row of a node's stats: a fraction for the bar (NaN for no
// bar), the numbers, and the kernel's events worth a warning.
type usageMeter struct {
	label  string
	frac   float64
	text   string
	events string
	// cur and max are the kernel's numbers (bytes, tasks, CPU µs used and
	// the quota per period), max Unlimited without a limit.
	cur, max int64
}

func statLines(n cgroups.Node, width int, t Theme) []string {
	ms := nodeMeters(n)
	if len(ms) == 0 {
		return []string{para(t.Dim, "no memory, pids or cpu controller here", width)}
	}
	barW := min(30, max(6, width/4))
	var out []string
	for _, m := range ms {
		out = append(out, meterLine(m, barW, width, t))
	}
	return out
}

// nodeMeters reads a node's memory, pids and cpu meters, those it has.
func nodeMeters(n cgroups.Node) []usageMeter {
	var ms []usageMeter
	st := n.Stats
	if m := st.Memory; m != nil {
		mt := usageMeter{label: "memory", frac: math.NaN(), text: memSize(m.Current) + " (no limit)", cur: m.Current, max: m.Max}
		if m.Max != cgroups.Unlimited {
			mt.frac, mt.text = ratio(m.Current, m.Max), memSize(m.Current)+" / "+memSize(m.Max)
		}
		mt.events = events(eventCount{"oom", m.OOM}, eventCount{"oom_kill", m.OOMKill})
		ms = append(ms, mt)
	}
	if p := st.Pids; p != nil {
		mt := usageMeter{label: "pids", frac: math.NaN(), text: fmt.Sprintf("%d (no limit)", p.Current), cur: p.Current, max: p.Max}
		if p.Max != cgroups.Unlimited {
			mt.frac, mt.text = ratio(p.Current, p.Max), fmt.Sprintf("%d / %d", p.Current, p.Max)
		}
		mt.events = events(eventCount{"forks refused", p.Refused})
		ms = append(ms, mt)
	}
	if c := st.CPU; c != nil {
		ms = append(ms, cpuMeter(n.CPUs, c))
	}
	return ms
}

func cpuMeter(used float64, c *cgroups.CPUStats) usageMeter {
	m := usageMeter{label: "cpu", frac: math.NaN(), cur: c.UsageUsec, max: cgroups.Unlimited}
	limit := 0.0
	if c.QuotaUsec != cgroups.Unlimited && c.PeriodUsec > 0 {
		limit = float64(c.QuotaUsec) / float64(c.PeriodUsec)
		m.max = c.QuotaUsec
	}
	switch {
	case used != cgroups.Unknown && limit > 0:
		m.frac, m.text = used/limit, fmt.Sprintf("%.2f / %.2f CPU", used, limit)
	case used != cgroups.Unknown:
		m.frac, m.text = math.Min(used, 1), fmt.Sprintf("%.2f CPU (no limit)", used)
	case limit > 0:
		m.text = fmt.Sprintf("%s used, quota %.0f%%", cpuSeconds(c.UsageUsec), limit*100)
	default:
		m.text = cpuSeconds(c.UsageUsec) + " used (no limit)"
	}
	if c.Throttled > 0 {
		m.events = fmt.Sprintf("throttled %d/%d periods, %s", c.Throttled, c.Periods, cpuSeconds(c.ThrottledUsec))
	}
	return m
}

func meterLine(m usageMeter, barW, width int, t Theme) string {
	label := fmt.Sprintf("%-7s ", m.label)
	var bar string
	switch {
	case math.IsNaN(m.frac):
		bar = t.Dim.Render(strings.Repeat("·", barW))
	default:
		f := math.Max(0, math.Min(1, m.frac))
		full := int(math.Round(f * float64(barW)))
		style := t.Good
		if f >= 0.8 {
			style = t.Warn
		}
		if f >= 1 {
			style = t.Bad
		}
		if full > 0 {
			bar = style.Render(strings.Repeat("█", full))
		}
		if full < barW {
			bar += t.Dim.Render(strings.Repeat("░", barW-full))
		}
	}
	room := width - len(label) - barW - 2
	if room <= 0 {
		return truncate(label, width)
	}
	text := truncate(m.text, room)
	line := label + bar + "  " + text
	if rest := room - lipgloss.Width(text) - 2; m.events != "" && rest > 0 {
		line += "  " + t.Bad.Render(truncate(m.events, rest))
	}
	return line
}

func ratio(a, b int64) float64 {
	if b <= 0 {
		return 1
	}
	return float64(a) / float64(b)
}

// eventCount is one of the kernel's event counters.
type eventCount struct {
	name string
	n    int64
}

// events prints the counters that are not zero: "oom 1 · oom_kill 1".
func events(cs ...eventCount) string {
	var out []string
	for _, c := range cs {
		if c.n > 0 {
			out = append(out, fmt.Sprintf("%s %d", c.name, c.n))
		}
	}
	return strings.Join(out, " · ")
}

// bytes prints a size the way limits are typed: 64M, 31.9M.
func memSize(n int64) string {
	units := []string{"B", "K", "M", "G", "T"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if f == math.Trunc(f) || i == 0 {
		return fmt.Sprintf("%.0f%s", f, units[i])
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}

func cpuSeconds(usec int64) string { return fmt.Sprintf("%.2fs", float64(usec)/1e6) }

// membership shows /proc/PID/cgroup as the host reads it and, when the
// box read its own /proc/self/cgroup, that too: after `unshare cgroup`
// the box sees its cgroup as "/".
func membership(snap cgroups.Snapshot, width int, t Theme) []string {
	if snap.BoxPID == 0 {
		return []string{para(t.Dim, "box "+snap.Box+" has no process yet", width)}
	}
	host := cgroupLines(snap.HostView)
	hostTitle := fmt.Sprintf("/proc/%d/cgroup, read by the host", snap.BoxPID)
	if snap.OwnView == nil {
		out := []string{para(t.Title, hostTitle, width)}
		for _, l := range host {
			out = append(out, "  "+truncateMiddle(l, width-2))
		}
		return out
	}
	own := cgroupLines(snap.OwnView)
	ownTitle := "/proc/self/cgroup, read inside the box"
	differs := func(i int) bool { return i >= len(host) || own[i] != host[i] }
	if width < cgroupSideBySide {
		out := []string{para(t.Title, hostTitle, width)}
		for _, l := range host {
			out = append(out, "  "+truncateMiddle(l, width-2))
		}
		out = append(out, para(t.Title, ownTitle, width))
		for i, l := range own {
			out = append(out, "  "+viewStyle(differs(i), t).Render(truncateMiddle(l, width-2)))
		}
		return out
	}
	col := (width - 3) / 2
	out := []string{t.Title.Render(padCell(truncate(hostTitle, col), col) + " │ " + truncate(ownTitle, col))}
	for i := range max(len(host), len(own)) {
		left, right := "", ""
		if i < len(host) {
			left = truncateMiddle(host[i], col)
		}
		if i < len(own) {
			right = viewStyle(differs(i), t).Render(truncateMiddle(own[i], col))
		}
		out = append(out, padCell(left, col)+t.Border.Render(" │ ")+right)
	}
	return out
}

func viewStyle(differs bool, t Theme) lipgloss.Style {
	if differs {
		return t.Changed
	}
	return t.Same
}

func padCell(s string, w int) string {
	return s + strings.Repeat(" ", max(0, w-lipgloss.Width(s)))
}

// cgroupLines prints /proc/PID/cgroup lines as the kernel writes them.
func cgroupLines(cgs []procfs.Cgroup) []string {
	out := make([]string, len(cgs))
	for i, c := range cgs {
		out[i] = fmt.Sprintf("%d:%s:%s", c.HierarchyID, strings.Join(c.Controllers, ","), Escape(c.Path))
	}
	return out
}
