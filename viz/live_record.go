package viz

import (
	"fmt"
	"strings"

	"stepbox/primitives/network"
)

// The live page's record of a line that is more than its step: what
// `net trace` found (the hops, the rules, conntrack, the nft trace), and
// the tail of what the last command printed, so the page answers the
// prediction the terminal answers.

// outputLines is how many of the last command's lines the page shows.
const outputLines = 4

// outputCols is where a line of output is cut: the rest is the
// terminal's.
const outputCols = 120

// OutputHTML is the tail of the output of line, the last command: its last
// outputLines lines, each escaped (a box's output is untrusted: no
// control character reaches the page, and HTML is text) and cut at the
// end, with how many came before.
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
	fmt.Fprintf(&b, `<div id="output"><h3>output of <code>%s</code></h3>`, esc(Escape(line)))
	if n := len(kept) - outputLines; n > 0 {
		fmt.Fprintf(&b, `<p class="more">… %d lines before (the terminal has them)</p>`, n)
		kept = kept[n:]
	}
	for _, l := range kept {
		l = Escape(l)
		if r := []rune(l); len(r) > outputCols {
			l = string(r[:outputCols-1]) + "…"
		}
		fmt.Fprintf(&b, `<pre class="out">%s</pre>`, esc(l))
	}
	b.WriteString(`</div>`)
	return b.String()
}

// TraceHTML is `net trace`'s record as the page shows it in place of the
// step's: the route lookups, the interfaces that counted packets hop by
// hop, the rules that counted them, conntrack's entries and each traced
// packet's path through the chains, the same data as NetTracePanel.
func TraceHTML(line string, tr network.Trace, output []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<section id="step" class="trace"><h2>last step: <code>%s</code></h2>`, esc(line))
	what := "followed box " + tr.Box + "'s packets"
	if tr.Dst != "" {
		what += " to " + tr.Dst
	}
	fmt.Fprintf(&b, `<p class="summary">%s: each hop counted by the kernel, and what answered</p>`, esc(what))
	b.WriteString(OutputHTML(line, output))
	b.WriteString(`<div class="record"><div><h3>hops, rules and conntrack</h3><ol class="calls">`)
	var items []string
	for _, r := range tr.Routes {
		items = append(items, fmt.Sprintf(`<li class="route"><code>%s</code></li>`, esc(Escape(r))))
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
	for _, r := range tr.Rules {
		items = append(items, fmt.Sprintf(`<li class="rule" data-chain="%s" data-packets="%d"><code>%s</code></li>`,
			esc(r.Chain), r.Packets, esc(fmt.Sprintf("%s +%d %s", r.Chain, r.Packets, r.Text))))
	}
	for _, f := range tr.Flows {
		items = append(items, fmt.Sprintf(`<li class="flow"><code>%s</code></li>`, esc("conntrack: "+Escape(f))))
	}
	for _, n := range tr.Neigh {
		items = append(items, fmt.Sprintf(`<li class="neigh"><code>%s</code></li>`, esc("arp: "+Escape(n))))
	}
	listItems(&b, items, stepCallsSpare, "li", "")
	b.WriteString(`</ol></div><div><h3>nftables trace (each chain and rule a packet met)</h3><div class="shell">`)
	var lines []string
	for _, l := range nftTraceLines(tr) {
		lines = append(lines, fmt.Sprintf(`<pre class="line">%s</pre>`, esc(Escape(l))))
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
