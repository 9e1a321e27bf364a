package viz

import (
	"fmt"
	"strings"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/network"
)

// The live page's record of a line that is more than its step: what
// `net trace` found (the hops, the rules, conntrack, the nft trace), and
// the tail of what the last command printed, so the page answers the
// prediction the terminal answers.

// outputLines is how many of the last command's lines the page sends,
// and outputSpare how many of them show without the script (which shows
// as many as fit the screen, the last ones first).
const (
	outputLines = 6
	outputSpare = 3
)

// outputCols is where a line of output is cut: the rest is the
// terminal's.
const outputCols = 80

// outputNameCols is how much of the command the output's title shows.
const outputNameCols = 32

// OutputHTML is the tail of the output of line, the last command: its
// last lines, each escaped (a box's output is untrusted: no control
// character reaches the page, and HTML is text) and cut at the end,
// with how many came before. The page's script hides the first ones
// until the page fits the screen, counting them.
func OutputHTML(line string, lines []string) string {
	var kept []string
	for _, l := range lines {
		if strings.TrimSpace(l) != "" {
			kept = append(kept, l)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	var b strings.Builder
	// The header shows the whole line; here its start names it.
	fmt.Fprintf(&b, `<div id="output"><h3>output of <code>%s</code> `, esc(cutEnd(escapeControls(line), outputNameCols))) // the learner's line
	cut := max(0, len(kept)-outputLines)
	kept = kept[cut:]
	spare := max(0, len(kept)-outputSpare)
	hidden := ` hidden=""`
	if cut+spare > 0 {
		hidden = ""
	}
	const why = " lines (the terminal has them)"
	// The count of the lines not shown goes in the title, so that a
	// page short of room loses no line to it.
	fmt.Fprintf(&b, `<span class="more" data-cut="%d" data-why="%s"%s>… %d more%s</span></h3><div class="tail">`, cut, why, hidden, cut+spare, why)
	for i, l := range kept {
		// As the terminal shows it (primitives.TerminalFilter): the
		// box's text with its backslashes, every control escaped.
		l = escapeControls(l)
		if r := []rune(l); len(r) > outputCols {
			l = string(r[:outputCols-1]) + "…"
		}
		class := "out"
		if i < spare {
			class += " spare"
		}
		fmt.Fprintf(&b, `<pre class="%s">%s</pre>`, class, esc(l))
	}
	b.WriteString(`</div></div>`)
	return b.String()
}

// TraceHTML is `net trace`'s record as the page shows it in place of the
// step's: the route lookups, the interfaces that counted packets hop by
// hop, the rules that counted them, conntrack's entries and each traced
// packet's path through the chains, the same data as NetTracePanel;
// output (OutputHTML) goes above them.
func TraceHTML(line string, tr network.Trace, output string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<section id="step" class="trace"><h2>last step: <code>%s</code></h2>`, esc(line))
	b.WriteString(output)
	what := "box " + tr.Box + "'s packets"
	if tr.Dst != "" {
		what += " to " + tr.Dst
	}
	fmt.Fprintf(&b, `<div class="record"><div><h3>%s: hops, rules, conntrack</h3><ol class="calls">`, esc(what))
	// What answers first (conntrack's NAT, the rules that counted),
	// then the hops: a page short of room loses the last ones.
	var items []string
	for _, f := range tr.Flows {
		items = append(items, fmt.Sprintf(`<li class="flow"><code>%s</code></li>`, esc("conntrack: "+Escape(f))))
	}
	for _, r := range tr.Rules {
		items = append(items, fmt.Sprintf(`<li class="rule" data-chain="%s" data-packets="%d"><code>%s</code></li>`,
			esc(r.Chain), r.Packets, esc(fmt.Sprintf("%s +%d %s", r.Chain, r.Packets, ruleVerdict(r.Text)))))
	}
	for i, h := range tr.Hops {
		arrow := ""
		if i > 0 {
			arrow = "→ "
		}
		items = append(items, fmt.Sprintf(`<li class="hop" data-space="%s" data-link="%s" data-rx="%d" data-tx="%d"><code>%s</code></li>`,
			esc(h.Space), esc(h.Link), h.Rx, h.Tx, esc(fmt.Sprintf("%s%s %s rx +%d tx +%d", arrow, h.Space, h.Link, h.Rx, h.Tx))))
	}
	if len(tr.Hops) == 0 {
		items = append(items, `<li class="hop none"><code>no interface counted a packet: none left the box</code></li>`)
	}
	for _, n := range tr.Neigh {
		items = append(items, fmt.Sprintf(`<li class="neigh"><code>%s</code></li>`, esc("arp: "+Escape(n))))
	}
	for _, r := range tr.Routes {
		items = append(items, fmt.Sprintf(`<li class="route"><code>%s</code></li>`, esc(Escape(r))))
	}
	listItems(&b, items, stepCallsSpare, "li", "")
	b.WriteString(`</ol></div><div><h3>nftables trace (each chain and rule a packet met)</h3><div class="shell">`)
	var lines []string
	for _, l := range nftTraceLines(tr) {
		lines = append(lines, fmt.Sprintf(`<pre class="line">%s</pre>`, esc(l))) // its rules quoted already (%q)
	}
	if len(lines) == 0 {
		lines = append(lines, `<pre class="line">no packet traced</pre>`)
	}
	listItems(&b, lines, stepShellSpare, "p", "")
	b.WriteString(`</div></div></div></section>`)
	return b.String()
}

// listItems writes items (each an element whose class attribute comes
// first) with the ones past spare marked spare, then the list's "… N
// more" line, as the step record's lists are.
func listItems(b *strings.Builder, items []string, spare int, tag, why string) {
	for i, it := range items {
		if i >= spare {
			it = strings.Replace(it, `class="`, `class="spare `, 1)
		}
		b.WriteString(it)
	}
	b.WriteString(moreLine(len(items), len(items), spare, tag, why))
}

// boxBrief is a box's cgroup and layer stack in a line each, for the
// layout where the network map takes their columns (two boxes and the
// map): the map stays as large as in the one-box layout, and the
// namespaces too, and nothing is drawn under 16 px.
func boxBrief(box LiveBox) string {
	var b strings.Builder
	b.WriteString(`<div class="brief">`)
	if c := box.Cgroup; c != nil {
		for _, n := range c.Parent.Children {
			if n.Name != c.BoxGroup {
				continue
			}
			var parts, events []string
			for _, m := range nodeMeters(n) {
				_, _, text := meterLevel(m, false)
				// Unlimited, a number says enough: "cpu 0.00", not
				// "cpu 0.00 CPU (no limit)".
				if m.max == cgroups.Unlimited {
					text = strings.TrimSuffix(strings.TrimSuffix(text, " (no limit)"), " CPU")
				}
				parts = append(parts, m.label+" "+text)
				if m.events != "" {
					events = append(events, m.events)
				}
			}
			ev := ""
			if len(events) > 0 {
				ev = ` <span class="events">` + esc(strings.Join(events, " · ")) + `</span>`
			}
			fmt.Fprintf(&b, `<p class="cgroup" data-cgroup="%s"><span class="what">cgroup</span> %s%s</p>`, esc(n.Name), esc(strings.Join(parts, " · ")), ev)
		}
	}
	if s := box.Stack; s != nil {
		bands := stackBands(*s, true)
		var names []string
		for i := len(bands) - 1; i >= 0; i-- {
			if bands[i].class == "lower" {
				names = append(names, bands[i].layer)
			}
		}
		fmt.Fprintf(&b, `<p class="stack" data-layers="%d"><span class="what">layers</span> %s → upper %s</p>`,
			len(s.Lowers), esc(strings.Join(names, " → ")), esc(bands[1].note))
	}
	if box.Cgroup == nil && box.Stack == nil {
		b.WriteString(`<p class="todo later">No root filesystem or cgroup yet.</p>`)
	}
	b.WriteString(`</div>`)
	return b.String()
}

// endHTML is the end of lesson l's demo: how its checks went, then its
// recap a paragraph each (the Markdown's marks dropped), and that the
// page stays until the lecturer closes it in the terminal.
func endHTML(l LiveLesson) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<section id="step" class="end"><h2>End of lesson %d</h2><p class="summary">%s</p>`, l.Number, esc(l.End.Summary))
	if r := strings.TrimSpace(l.End.Recap); r != "" {
		b.WriteString(`<div id="recap"><h3>Recap</h3>`)
		for _, p := range strings.Split(r, "\n\n") {
			p = strings.NewReplacer("**", "", "`", "", "\n", " ").Replace(strings.TrimSpace(p))
			fmt.Fprintf(&b, `<p>%s</p>`, esc(p))
		}
		b.WriteString(`</div>`)
	}
	b.WriteString(`<p class="more">a key in stepbox's terminal closes this page</p></section>`)
	return b.String()
}

// ruleVerdict is what a rule does, the words after its counter
// ("masquerade", "dnat to 172.20.0.2:80"), for a line the page has room
// for; the whole rule when it has no counter. The terminal's trace has
// the matches.
func ruleVerdict(text string) string {
	i := strings.LastIndex(text, "counter")
	if i < 0 {
		return text
	}
	words := strings.Fields(text[i+len("counter"):])
	if len(words) >= 4 && words[0] == "packets" && words[2] == "bytes" {
		words = words[4:]
	}
	if len(words) == 0 {
		return text
	}
	return "… " + strings.Join(words, " ")
}
