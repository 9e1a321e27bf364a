package viz

import (
	"fmt"
	"strings"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
)

// CgroupStep is what a cgroup step changed, for CgroupStepPanel.
type CgroupStep struct {
	Resource string // memory, pids or cpu: the limit the step wrote ("" for none)
	Attached bool   // the step moved processes in: show /proc/PID/cgroup
}

// CgroupStepPanel is what a cgroup step changed, short enough to sit
// under the step on one screen: the box's own cgroup with its processes
// and meters (the one the step limited marked), after `cgroup attach`
// the box's line of /proc/PID/cgroup, and a footer naming `cgroup show`,
// which draws the whole tree (CgroupPanel).
func CgroupStepPanel(snap cgroups.Snapshot, what CgroupStep, width int, t Theme) string {
	width = max(width, 40)
	n, ok := findNode(snap.Parent, snap.BoxGroup)
	if !ok {
		return CgroupPanel(snap, width, t)
	}
	var out []string
	for _, l := range strings.Split(Wrap(fmt.Sprintf("cgroup %s · box %s · procs %s", n.Name, snap.Box, procList(n.Procs)), width, "  "), "\n") {
		out = append(out, t.Title.Render(l))
	}
	for _, l := range statLines(n, width-2, t) {
		// statLines starts each line with its plain label.
		if what.Resource != "" && strings.HasPrefix(l, what.Resource+" ") {
			l = t.Changed.Render(what.Resource) + strings.TrimPrefix(l, what.Resource)
		}
		out = append(out, "  "+l)
	}
	if what.Attached {
		out = append(out, attachedLines(snap, width, t)...)
	}
	return strings.Join(append(out, para(t.Dim, "`cgroup show` draws the whole tree and /proc/PID/cgroup", width)), "\n")
}

// findNode finds the cgroup called name under n.
func findNode(n cgroups.Node, name string) (cgroups.Node, bool) {
	if n.Name == name && name != "" {
		return n, true
	}
	for _, c := range n.Children {
		if f, ok := findNode(c, name); ok {
			return f, true
		}
	}
	return cgroups.Node{}, false
}

// attachedLines are the lines of /proc/PID/cgroup that name the box's
// cgroup: the first in full, the others counted.
func attachedLines(snap cgroups.Snapshot, width int, t Theme) []string {
	var in []string
	for _, l := range cgroupLines(snap.HostView) {
		if strings.HasSuffix(l, "/"+snap.BoxGroup) {
			in = append(in, l)
		}
	}
	title := fmt.Sprintf("/proc/%d/cgroup, read by the host:", snap.BoxPID)
	if len(in) == 0 {
		return []string{t.Dim.Render(Wrap(title+" no line names "+snap.BoxGroup+" yet", width, "  "))}
	}
	out := []string{t.Title.Render(title), "  " + truncateMiddle(in[0], width-2)}
	if len(in) > 1 {
		more := fmt.Sprintf("and %s ending in /%s", step.Count(len(in)-1, "more line"), snap.BoxGroup)
		out = append(out, t.Dim.Render(Hang("  ", more, width)))
	}
	return out
}
