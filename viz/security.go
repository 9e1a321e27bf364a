package viz

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives"
)

// SecurityPanel is the box's privileges as the kernel shows them: its
// PID 1's capability sets, no_new_privs and seccomp (/proc/PID/status),
// Docker's masked and read-only paths (its mount table), the device
// rules of its cgroup and its user namespace; beside them what the box's
// next command gets, and Docker's default. A value that lets the box do
// more than Docker's default is starred; one that lets it do less, '+'.
func SecurityPanel(s primitives.SecuritySnapshot, width int, t Theme) string {
	d := primitives.DockerDefault
	who := fmt.Sprintf("PID 1 · %d", s.PID)
	if !s.IsInit {
		who = fmt.Sprintf("box process · %d", s.PID)
	}
	headers := []string{"", who, "next command", "Docker's default"}
	var rows [][]string
	var verdicts [][2]primitives.Strictness
	add := func(name, now, next, docker string, vNow, vNext primitives.Strictness) {
		rows = append(rows, []string{name, now + strictMark(vNow), next + strictMark(vNext), docker})
		verdicts = append(verdicts, [2]primitives.Strictness{vNow, vNext})
	}
	caps := []struct {
		name   string
		get    func(p primitives.ProcSecurity) uint64
		docker uint64
	}{
		{"CapBnd", func(p primitives.ProcSecurity) uint64 { return p.CapBnd }, d.Caps},
		{"CapPrm", func(p primitives.ProcSecurity) uint64 { return p.CapPrm }, d.Caps},
		{"CapEff", func(p primitives.ProcSecurity) uint64 { return p.CapEff }, d.Caps},
		{"CapInh", func(p primitives.ProcSecurity) uint64 { return p.CapInh }, 0},
		{"CapAmb", func(p primitives.ProcSecurity) uint64 { return p.CapAmb }, 0},
	}
	next := func(f func(p primitives.ProcSecurity) (string, primitives.Strictness)) (string, primitives.Strictness) {
		if s.Next == nil {
			return "not read yet", primitives.Unread
		}
		return f(*s.Next)
	}
	for _, c := range caps {
		v := c.get(s.Proc)
		nextText, nv := next(func(p primitives.ProcSecurity) (string, primitives.Strictness) {
			return capCount(c.get(p)), primitives.CompareCaps(c.get(p), c.docker)
		})
		add(c.name, capCount(v), nextText, capCount(c.docker), primitives.CompareCaps(v, c.docker), nv)
	}
	nnp := func(p primitives.ProcSecurity) (string, primitives.Strictness) {
		return onOff(p.NoNewPrivs), d.CompareNoNewPrivs(p.NoNewPrivs)
	}
	now, vNow := nnp(s.Proc)
	nextText, vNext := next(nnp)
	add("NoNewPrivs", now, nextText, onOff(d.NoNewPrivs), vNow, vNext)
	sc := func(p primitives.ProcSecurity) (string, primitives.Strictness) {
		return seccompText(p.Seccomp, p.SeccompFilters), d.CompareSeccomp(p.Seccomp, p.SeccompFilters)
	}
	now, vNow = sc(s.Proc)
	nextText, vNext = next(sc)
	add("Seccomp", now, nextText, seccompText(d.Seccomp, d.Filters)+", its profile", vNow, vNext)
	// Mounts, device rules and the user namespace are the box's: the next
	// command shares them with PID 1.
	same := "as PID 1"
	mv, rv := primitives.ComparePaths(s.Masked), primitives.ComparePaths(s.ReadOnly)
	add("masked", coveredCount(s.Masked), same, fmt.Sprintf("all %d", len(d.Masked)), mv, mv)
	add("read-only", coveredCount(s.ReadOnly), same, fmt.Sprintf("all %d", len(d.ReadOnly)), rv, rv)
	dv := d.CompareDevices(s.Devices)
	add("devices", Escape(devicesText(s.Devices)), same, fmt.Sprintf("%d rules", len(d.Devices)), dv, dv)
	uv := d.CompareUserNS(s.UserNS, rootIsHostRoot(s.UIDMap))
	add("user ns", userNSText(s), same, "host's", uv, uv)

	style := func(row, col int) lipgloss.Style {
		switch {
		case col == 0:
			return t.Same
		case col == 3:
			return t.Dim
		}
		switch verdicts[row][col-1] {
		case primitives.Weaker:
			return t.Bad
		case primitives.Stricter:
			return t.Good
		}
		return t.Same
	}
	title := para(t.Title, fmt.Sprintf("security of box %s · /proc/%d/status, mountinfo, its cgroup; * = weaker than Docker's default, + = stricter", Escape(s.Box), s.PID), width)
	return lines(title, t.renderTable(headers, rows, style, width, 1, 2), securityDetails(s, width, t))
}

// securityDetails names what the counts of the table stand for, where
// the box differs from Docker's default.
func securityDetails(s primitives.SecuritySnapshot, width int, t Theme) string {
	d := primitives.DockerDefault
	var out []string
	item := func(label string, names []string) {
		if len(names) > 0 {
			out = append(out, para(t.Dim, label+" "+Escape(strings.Join(names, " ")), width))
		}
	}
	item("CapEff beyond Docker's:", primitives.DecodeCaps(s.Proc.CapEff&^d.Caps))
	if s.Next != nil {
		item("next command's CapEff beyond Docker's:", primitives.DecodeCaps(s.Next.CapEff&^d.Caps))
	}
	var open []string
	for _, p := range append(append([]primitives.GuardedPath{}, s.Masked...), s.ReadOnly...) {
		if !p.Covered() {
			open = append(open, p.Path)
		}
	}
	item("open paths:", open)
	var byBox []string
	for _, p := range append(append([]primitives.GuardedPath{}, s.Masked...), s.ReadOnly...) {
		if p.ByBox {
			byBox = append(byBox, p.Path)
		}
	}
	item("masked by the box itself, which can unmount it:", byBox)
	if s.Devices.Rules != nil && d.CompareDevices(s.Devices) != primitives.AsDocker {
		item("device rules:", s.Devices.Rules)
	}
	return strings.Join(out, "\n")
}

func strictMark(v primitives.Strictness) string {
	switch v {
	case primitives.Weaker:
		return " *"
	case primitives.Stricter:
		return " +"
	}
	return ""
}

// capCount is a capability set in short: how many, or none.
func capCount(mask uint64) string {
	n := len(primitives.DecodeCaps(mask))
	switch n {
	case 0:
		return "none"
	case 1:
		return "1 cap"
	}
	return fmt.Sprintf("%d caps", n)
}

func onOff(on bool) string {
	if on {
		return "1 on"
	}
	return "0 off"
}

func seccompText(mode, filters int) string {
	name := map[int]string{0: "off", 1: "strict", 2: "filter"}[mode]
	text := fmt.Sprintf("%d %s", mode, name)
	if mode == 2 && filters >= 0 {
		text += fmt.Sprintf(" ×%d", filters)
	}
	return text
}

// coveredCount counts the paths guarded among those the box has: a path
// absent from the box (this kernel has no /proc/asound) needs no guard.
func coveredCount(paths []primitives.GuardedPath) string {
	n, present := 0, 0
	for _, p := range paths {
		if p.Guard != "absent" {
			present++
			if p.Covered() {
				n++
			}
		}
	}
	text := fmt.Sprintf("%d of %d", n, present)
	if absent := len(paths) - present; absent > 0 {
		text += fmt.Sprintf(", %d absent", absent)
	}
	return text
}

func devicesText(r primitives.DeviceList) string {
	switch {
	case r.Unread != "":
		return r.Unread
	case len(r.Rules) == 1:
		return r.Rules[0]
	}
	return fmt.Sprintf("%d rules", len(r.Rules))
}

func userNSText(s primitives.SecuritySnapshot) string {
	if !s.UserNS {
		return "host's"
	}
	var maps []string
	for _, m := range s.UIDMap {
		maps = append(maps, fmt.Sprintf("%d→%d ×%d", m.Inside, m.Outside, m.Count))
	}
	text := "own, uid " + strings.Join(maps, ", ")
	if rootIsHostRoot(s.UIDMap) {
		text += " (its root is the host's root to kill(2) and file modes)"
	}
	return text
}

// rootIsHostRoot says whether a uid map makes uid 0 inside uid 0 outside.
func rootIsHostRoot(m []primitives.IDMapping) bool {
	for _, r := range m {
		if r.Inside == 0 && r.Count > 0 && r.Outside == 0 {
			return true
		}
	}
	return false
}
