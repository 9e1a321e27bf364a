package viz

import (
	"fmt"
	"sort"
	"strings"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives/network"
)

// NetPanel draws the network map: for the host side and each box, its
// interfaces (kind, state, MTU, addresses, packet counters, the bridge a
// port belongs to and whose veth it is) and its routes; then stepbox's
// nf_tables rules with their counters, and the published ports. focus
// names the namespaces to draw ("" for all): after a step, the part it
// changed.
func NetPanel(m network.Map, focus []string, width int, t Theme) string {
	width = max(width, 40)
	var out []string
	show := func(name string) bool { return len(focus) == 0 || contains(focus, name) }
	if show("host") {
		out = append(out, t.Title.Render(truncate(fmt.Sprintf("network · host side (net ns %d)", m.Host.Ino), width)))
		for _, b := range m.Bridges {
			out = append(out, t.Dim.Render(truncate(Escape(fmt.Sprintf("bridge %s: subnet %s, gateway %s", b.Name, b.Subnet, b.Gateway)), width)))
		}
		out = append(out, spaceTable(m.Host, m.Owners, width, t), "")
	}
	for _, sp := range m.Boxes {
		if !show(sp.Name) {
			continue
		}
		out = append(out, t.Title.Render(truncate(fmt.Sprintf("box %s (net ns %d)", sp.Name, sp.Ino), width)), spaceTable(sp, nil, width, t), "")
	}
	if len(m.Gone) > 0 {
		out = append(out, t.Warn.Render(truncate("could not read the network namespace of "+strings.Join(m.Gone, ", ")+": the box's processes are gone (`rm` it)", width)), "")
	}
	if len(focus) == 0 && len(m.Shared) > 0 {
		out = append(out, t.Dim.Render(truncate("in the host's network namespace (no `unshare net`): "+strings.Join(m.Shared, ", "), width)), "")
	}
	if show("host") {
		if len(m.Rules) > 0 {
			out = append(out, t.Title.Render(truncate("nft table ip "+network.Table+" · every rule with its counter", width)))
			for _, r := range m.Rules {
				out = append(out, ruleLines(r, width, t)...)
			}
			out = append(out, "")
		}
		if len(m.Ports) > 0 {
			var ps []string
			for _, p := range m.Ports {
				ps = append(ps, Escape(fmt.Sprintf("host :%d/%s → box %s %s:%d", p.Port.Host, p.Port.Proto, p.Box, p.Addr, p.Port.Box)))
			}
			out = append(out, t.Title.Render("published"), strings.Join(ps, "\n"), "")
		}
	}
	return strings.TrimRight(strings.Join(out, "\n"), "\n")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// spaceTable is one namespace's links, then its routes.
func spaceTable(sp network.Space, owners map[string]string, width int, t Theme) string {
	var rows [][]string
	var mine []bool
	links := append([]network.Link(nil), sp.Links...)
	// Ports sit under their bridge.
	sort.SliceStable(links, func(i, j int) bool { return portKey(links[i]) < portKey(links[j]) })
	for _, l := range links {
		// A box names its links, their kinds (a driver's) and their
		// masters; each cell on one line.
		name := Escape(l.Name)
		if l.Master != "" {
			name = "└─ " + name
		}
		state := linkState(l)
		what := Escape(l.Kind)
		if l.Master != "" {
			what += " on " + Escape(l.Master)
		}
		if o, ok := owners[l.Name]; ok {
			what += " ↔ box " + o + " eth0"
		}
		rows = append(rows, []string{name, what, Escape(state), fmt.Sprint(l.MTU), Escape(strings.Join(l.Addrs, " ")),
			fmt.Sprintf("%d / %d", l.RxPackets, l.TxPackets)})
		mine = append(mine, l.Kind == "bridge" || l.Master != "" || owners[l.Name] != "")
	}
	style := func(row, col int) lipgloss.Style {
		if row < len(mine) && mine[row] {
			return t.Changed
		}
		return t.Same
	}
	var routes []string
	for _, r := range sp.Routes {
		line := r.Dst
		if r.Gw != "" {
			line += " via " + r.Gw
		}
		line += " dev " + r.Dev + " scope " + r.Scope
		if r.Src != "" {
			line += " src " + r.Src
		}
		// The route's device is a link the box named (ESC [ 2 J, an OSC
		// title): issue 15, item 7.
		routes = append(routes, "  "+Escape(line))
	}
	if len(routes) == 0 {
		routes = []string{"  (none: every destination is unreachable)"}
	}
	return t.renderTable([]string{"link", "kind", "state", "mtu", "addresses", "rx / tx packets"}, rows, style, width) +
		"\n" + t.Dim.Render("routes (main table):") + "\n" + strings.Join(routes, "\n")
}

// linkState is the link's administrative state (IFF_UP) and, when the
// two differ, its operstate: a veth set up a moment ago has no carrier
// until the kernel's link watch has run, and "down" would read as a
// failed step.
func linkState(l network.Link) string {
	switch {
	case !l.Up:
		return "down"
	case l.State == "down" || l.State == "lowerlayerdown":
		return "up · no carrier yet"
	case l.State == "up" || l.State == "unknown":
		return l.State
	}
	return "up · " + l.State
}

// portKey sorts a bridge's ports right after it.
func portKey(l network.Link) string {
	if l.Master != "" {
		return l.Master + "\x01" + l.Name
	}
	return l.Name
}

// NetTracePanel draws what one command's packets did: route lookups,
// the interfaces that counted them in the order a packet leaving the box
// meets them, the rules that counted them, neighbour entries made and the
// connections conntrack tracked.
func NetTracePanel(tr network.Trace, width int, t Theme) string {
	width = max(width, 40)
	title := "net trace · box " + tr.Box
	if tr.Dst != "" {
		title += " → " + tr.Dst
	}
	out := []string{t.Title.Render(truncate(Escape(title), width))}
	section := func(name string, lines []string, none string, escape func(string) string) {
		out = append(out, t.Dim.Render(name))
		if len(lines) == 0 {
			lines = []string{none}
		}
		// Wrapped, not cut: the end of a line (the NAT address, the
		// end of a sentence) is often what it is there for.
		// Link names, addresses and packets come from the box: each
		// line escaped before it is wrapped.
		for _, l := range lines {
			out = append(out, "  "+Wrap(escape(l), width-2, "      "))
		}
	}
	section("route lookups (RTM_GETROUTE)", tr.Routes, "(no IPv4 address in the command)", Escape)
	var hops []string
	for i, h := range tr.Hops {
		arrow := "  "
		if i > 0 {
			arrow = "→ "
		}
		if h.Note != "" && h.Rx == 0 && h.Tx == 0 {
			hops = append(hops, fmt.Sprintf("%s%-12s %-14s %s", arrow, h.Space, h.Link, h.Note))
			continue
		}
		hops = append(hops, fmt.Sprintf("%s%-12s %-14s rx +%d  tx +%d", arrow, h.Space, h.Link, h.Rx, h.Tx))
	}
	section("interfaces that counted packets (rx/tx deltas)", hops, "(none: no packet left the box)", Escape)
	var rules []string
	for _, r := range tr.Rules {
		rules = append(rules, fmt.Sprintf("%-11s +%d  %s", r.Chain, r.Packets, r.Text))
	}
	section("stepbox's nft rules that counted them", rules, "(none)", Escape)
	section("neighbour entries made or refreshed (ARP)", tr.Neigh, "(none)", Escape)
	section("conntrack on the host side", tr.Flows, "(none)", Escape)
	// The trace quotes each rule already (%q, network.Trace): escaped
	// twice, its quotes would read \\".
	section("nftables trace on the host side (meta nftrace, NFNLGRP_NFTRACE)", nftTraceLines(tr), "(no packet traced)", escapeControls)
	// Folded between words, never cut: a command is for copying.
	for _, l := range tr.NftShell {
		for _, f := range strings.Split("$ "+FoldShell(Escape(l), width-4), "\n") {
			out = append(out, t.Dim.Render("  "+f))
		}
	}
	return strings.Join(out, "\n")
}

// maxTracedPackets bounds the packets drawn: a wget makes dozens.
const maxTracedPackets = 8

// nftTraceLines is each traced packet, then the chains and rules it met
// in order, then why some packets could not be traced.
func nftTraceLines(tr network.Trace) []string {
	var lines []string
	for i, p := range tr.Packets {
		if i == maxTracedPackets {
			lines = append(lines, fmt.Sprintf("… and %d packets more", len(tr.Packets)-i))
			break
		}
		lines = append(lines, fmt.Sprintf("packet %d: %s", i+1, p.Packet))
		for _, step := range p.Path {
			lines = append(lines, "  → "+step)
		}
	}
	return append(lines, tr.NftNotes...)
}

// ruleLines is one rule: its chain, its words wrapped under one another,
// then its comment.
func ruleLines(r network.Rule, width int, t Theme) []string {
	const indent = 14
	pad := strings.Repeat(" ", indent)
	var lines []string
	line := fmt.Sprintf("  %-11s ", r.Chain)
	for _, w := range strings.Fields(Escape(r.Text)) {
		if len(line) > indent && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = pad
		}
		if len(line) > indent {
			line += " "
		}
		line += w
	}
	lines = append(lines, line)
	if r.Comment != "" {
		lines = append(lines, t.Dim.Render(truncate(pad+"# "+Escape(r.Comment), width)))
	}
	return lines
}
