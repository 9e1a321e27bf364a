package viz

import (
	"fmt"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives"
	"stepbox/primitives/probe"
)

// ProbePanel is the escape probes' table: each probe, open, closed or unknown,
// what it saw, and for an open hole the steps that close it. The
// evidence comes from a process the box controls: every value is escaped
// once (Escape; renderTable leaves it) and was cut to printable text by
// the session.
func ProbePanel(box string, rs []primitives.ProbeResult, width int, t Theme) string {
	width = max(width, 40)
	open, unknown := 0, 0
	var rows [][]string
	for _, r := range rs {
		switch r.State {
		case probe.Open:
			open++
		case probe.Unknown:
			unknown++
		}
		closes := r.Closes
		if closes == "" {
			closes = "-"
		}
		// The evidence is the box's text: escaped once here (Escape), so
		// a backslash it wrote is told from an escape.
		rows = append(rows, []string{Escape(r.Name), r.State, Escape(r.Evidence), closes})
	}
	counts := fmt.Sprintf("%d open, %d closed", open, len(rs)-open-unknown)
	if unknown > 0 {
		counts += fmt.Sprintf(", %d unknown", unknown)
	}
	title := para(t.Title, fmt.Sprintf("escape probes · box %s · %s · tried from inside, nothing on the host changed", Escape(box), counts), width)
	style := func(row, col int) lipgloss.Style {
		if col != 1 {
			return t.Same
		}
		switch rs[row].State {
		case probe.Open:
			return t.Bad
		case probe.Unknown:
			return t.Warn
		}
		return t.Good
	}
	return lines(title, t.renderTable([]string{"probe", "state", "evidence", "closed by"}, rows, style, width, 2, 3))
}

// DevicesPanel shows the box's device rules as the kernel has them: v1's
// devices.list, or the eBPF programs attached to a v2 cgroup with the
// rules stepbox compiled into its own.
func DevicesPanel(box string, d primitives.DeviceRules, width int, t Theme) string {
	width = max(width, 40)
	var title string
	var rows [][]string
	if d.Version == 1 {
		title = fmt.Sprintf("devices · box %s · cgroup v1 · %s", box, d.File)
		for _, l := range d.Lines {
			rows = append(rows, []string{"allow", l})
		}
	} else {
		title = fmt.Sprintf("devices · box %s · cgroup v2 · %d eBPF program(s) attached to %s", box, len(d.Progs), d.File)
		for i := len(d.Rules) - 1; i >= 0; i-- {
			rows = append(rows, []string{d.Rules[i].Verb(), d.Rules[i].String()})
		}
	}
	if len(rows) == 0 {
		note := "no rule: every device may be opened and made"
		if d.Version == 2 && len(d.Progs) > 0 {
			note = "programs stepbox did not make are attached: their rules are not readable here"
		}
		return lines(para(t.Title, title, width), para(t.Dim, note, width))
	}
	order := "devices.list, as the kernel keeps it"
	if d.Version == 2 {
		order = "the program tries them top to bottom; the first that matches decides, none matching allows"
	}
	return lines(para(t.Title, title, width), para(t.Dim, order, width), t.renderTable([]string{"verdict", "rule"}, rows, nil, width))
}
