package viz

import (
	"fmt"
	"strings"

	"stepbox/primitives/network"
)

// Sizes of the network map.
const (
	netBridgeH = 52  // the bridge's band
	netPortX   = 26  // where a port's host end starts
	netCardX   = 196 // where a box's card starts
	netLine    = 19  // one line of text in a card
)

// NetSVG draws the network map from the same snapshot the `net` panel
// reads: each bridge stepbox made as a band with its gateway address and
// counters, each of its ports below it with its packet counters, wired to
// the box whose eth0 is the other end (the box's addresses, counters and
// default route), then boxes with a network namespace but no veth, the
// published ports, the NAT rules' counters, and the boxes that still
// share the host's network namespace. Only stepbox's links are drawn,
// never the host's own interfaces.
func NetSVG(m network.Map) string { return netSVG(m, wideSize) }

// netSVG is NetSVG at size.
func netSVG(m network.Map, size svgSize) string {
	d := svgDoc{size: size}
	w, small := d.w(), size.small
	d.text(0, 22, "title", fitWords(fmt.Sprintf("network · host net ns %d", m.Host.Ino), w, svgTitle))
	y := 34
	wired := map[string]bool{}
	for _, br := range m.Bridges {
		link, ok := m.Host.Link(br.Name)
		if !ok {
			continue
		}
		d.add(`<g class="link bridge" %s><rect x="1" y="%d" width="%d" height="%d" rx="6"/>`, linkData("host", link, ""), y, w-2, netBridgeH)
		d.text(10, y+21, "name", fitWords(fmt.Sprintf("bridge %s  %s", br.Name, strings.Join(link.Addrs, " ")), w-20, svgText))
		d.text(10, y+43, "value", fitWords(fmt.Sprintf("gateway · link %s · rx %d tx %d packets", upWord(link), link.RxPackets, link.TxPackets), w-20, small))
		d.add(`</g>`)
		y += netBridgeH
		var ports []network.Link
		for _, l := range m.Host.Links {
			if l.Master == br.Name {
				ports = append(ports, l)
			}
		}
		if len(ports) == 0 {
			d.text(netPortX, y+24, "dim", fitWords("no port yet: `net veth` plugs a box in", w-netPortX, small))
			y += 34
			continue
		}
		top := y
		for _, p := range ports {
			owner := m.Owners[p.Name]
			wired[owner] = true
			sp, found := boxSpace(m, owner)
			// The card: its name, two lines a link, its route.
			lines := 2 + 2*len(boxLinks(sp))
			h := 26 + netLine*(lines-1) + 13
			cy := y + 10
			// The port, the cable to the box, and the trunk to the bridge.
			d.add(`<line class="trunk" x1="14" y1="%d" x2="14" y2="%d"/><line class="trunk" x1="14" y1="%d" x2="%d" y2="%d"/>`, top, cy+22, cy+22, netPortX, cy+22)
			d.add(`<g class="link veth port" %s><rect x="%d" y="%d" width="%d" height="%d" rx="4"/>`, linkData("host", p, owner), netPortX, cy, netCardX-netPortX-26, 44)
			d.text(netPortX+6, cy+18, "name", fitWords(p.Name, netCardX-netPortX-36, small))
			d.text(netPortX+6, cy+37, "value", fitWords(fmt.Sprintf("rx %d tx %d", p.RxPackets, p.TxPackets), netCardX-netPortX-36, small))
			d.add(`</g><line class="cable" x1="%d" y1="%d" x2="%d" y2="%d"/>`, netCardX-26, cy+22, netCardX, cy+22)
			d.add(`<g class="netbox" data-box="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="8"/>`, esc(owner), netCardX, cy-4, w-netCardX-1, h-10)
			cw := w - netCardX - 20
			if owner == "" {
				d.text(netCardX+10, cy+18, "dim", fitWords("a veth whose box is gone", cw, small))
				d.add(`</g>`)
				y += h
				continue
			}
			d.text(netCardX+10, cy+16, "name", fitWords(fmt.Sprintf("box %s · ns %d", owner, sp.Ino), cw, small))
			ly := cy + 16
			if !found {
				d.text(netCardX+10, ly+netLine, "dim", fitWords("its namespace could not be read", cw, small))
			}
			for _, l := range boxLinks(sp) {
				d.add(`<g class="link %s" %s>`, esc(l.Kind), linkData(sp.Name, l, ""))
				d.text(netCardX+10, ly+netLine, "", fitWords(Escape(l.Name)+" "+strings.Join(l.Addrs, " "), cw, small)) // the box names its links, as the net panel shows them
				d.text(netCardX+10, ly+2*netLine, "value", fitWords(fmt.Sprintf("%s · rx %d tx %d", upWord(l), l.RxPackets, l.TxPackets), cw, small))
				d.add(`</g>`)
				ly += 2 * netLine
			}
			if found {
				d.b.WriteString(routeText(netCardX+10, ly+netLine, cw, small, sp))
			}
			d.add(`</g>`)
			y += h
		}
		y += 4
	}
	for _, sp := range m.Boxes {
		if wired[sp.Name] {
			continue
		}
		d.add(`<g class="netbox" data-box="%s">`, esc(sp.Name))
		d.text(4, y+22, "name", fitWords(fmt.Sprintf("box %s · net ns %d · no veth yet", sp.Name, sp.Ino), w-8, small))
		y += 26
		for _, l := range boxLinks(sp) {
			d.add(`<g class="link %s" %s>`, esc(l.Kind), linkData(sp.Name, l, ""))
			d.text(16, y+18, "value", fitWords(fmt.Sprintf("%s %s · %s · rx %d tx %d", Escape(l.Name), strings.Join(l.Addrs, " "), upWord(l), l.RxPackets, l.TxPackets), w-20, small))
			d.add(`</g>`)
			y += 22
		}
		d.add(`</g>`)
		y += 4
	}
	for _, p := range m.Ports {
		d.add(`<g class="published" data-host-port="%d" data-proto="%s" data-box="%s" data-addr="%s" data-box-port="%d">`,
			p.Port.Host, esc(p.Port.Proto), esc(p.Box), esc(p.Addr), p.Port.Box)
		// The DNAT target is the point of the line: it goes whole on a
		// second line rather than be cut.
		from, to := fmt.Sprintf("published host :%d/%s", p.Port.Host, p.Port.Proto), fmt.Sprintf("→ box %s %s:%d", p.Box, p.Addr, p.Port.Box)
		if whole := from + " " + to; fitWords(whole, w-8, small) == whole {
			d.text(4, y+22, "", whole)
		} else {
			d.text(4, y+22, "", fitWords(from, w-8, small))
			y += 22
			d.text(24, y+22, "", fitWords(to, w-28, small))
		}
		d.add(`</g>`)
		y += 26
		y = publishCounters(&d, m.Rules, network.PublishTag(p.Box, p.Port), y)
	}
	for _, r := range m.Rules {
		if bridge, ok := strings.CutPrefix(r.Comment, "stepbox nat "); ok {
			d.add(`<g class="nat" data-bridge="%s" data-packets="%d">`, esc(bridge), r.Packets)
			d.text(4, y+22, "value", fitWords(fmt.Sprintf("%s: %d packets", natWhat(r, bridge), r.Packets), w-8, small))
			d.add(`</g>`)
			y += 26
		}
	}
	if len(m.Shared) > 0 {
		d.text(4, y+22, "dim", fitWords("in the host's network namespace: "+strings.Join(m.Shared, ", "), w-8, small))
		y += 26
	}
	if len(m.Gone) > 0 {
		d.text(4, y+22, "events", fitWords("namespace gone: "+strings.Join(m.Gone, ", ")+" (rm it)", w-8, small))
		y += 26
	}
	d.h = y + 6
	return d.finish("net", "network map")
}

// publishCounters draws what a published port's rules (tag) counted:
// its DNAT, from outside and other boxes (prerouting) and from the host
// itself (output), and its masquerades, for the host's own 127.0.0.1 and
// for the hairpin (a box reaching a published port through the host,
// answered by the box behind it). It returns the y below them.
func publishCounters(d *svgDoc, rules []network.Rule, tag string, y int) int {
	var dnat, masq []string
	var packets [4]uint64
	for _, r := range rules {
		if r.Comment != tag {
			continue
		}
		switch {
		case r.Chain == "prerouting":
			dnat, packets[0] = append(dnat, fmt.Sprintf("outside %d", r.Packets)), r.Packets
		case r.Chain == "output":
			dnat, packets[1] = append(dnat, fmt.Sprintf("host %d", r.Packets)), r.Packets
		case strings.Contains(r.Text, "127.0.0.0/8"):
			masq, packets[2] = append(masq, fmt.Sprintf("host %d", r.Packets)), r.Packets
		default:
			masq, packets[3] = append(masq, fmt.Sprintf("hairpin %d", r.Packets)), r.Packets
		}
	}
	w, small := d.w(), d.size.small
	if small == 0 {
		small = svgSmall
	}
	for i, l := range []struct {
		what  string
		parts []string
		a, b  uint64
	}{{"dnat", dnat, packets[0], packets[1]}, {"masquerade", masq, packets[2], packets[3]}} {
		if len(l.parts) == 0 {
			continue
		}
		d.add(`<g class="nat publish" data-tag="%s" data-what="%s" data-packets="%d,%d">`, esc(tag), l.what, l.a, l.b)
		words := "DNAT: "
		if i == 1 {
			words = "masquerade: "
		}
		d.text(24, y+20, "value", fitWords(words+strings.Join(l.parts, " · "), w-28, small))
		d.add(`</g>`)
		y += 24
	}
	return y
}

// natWhat says what a NAT rule of bridge counts: the masquerade on the
// way out, or the forwarding from the bridge and back to it.
func natWhat(r network.Rule, bridge string) string {
	switch {
	case r.Chain != "forward":
		return "masquerade out of " + bridge
	case strings.Contains(r.Text, "iifname"):
		return "forwarded from " + bridge
	}
	return "forwarded back to " + bridge
}

// linkData is a link's data attributes: the namespace it is in, its name,
// kind, addresses, counters, bridge and the box at its other end.
func linkData(ns string, l network.Link, peer string) string {
	return fmt.Sprintf(`data-ns="%s" data-name="%s" data-kind="%s" data-up="%t" data-addrs="%s" data-rx="%d" data-tx="%d" data-master="%s" data-peer-box="%s"`,
		esc(ns), esc(l.Name), esc(l.Kind), l.Up, esc(strings.Join(l.Addrs, " ")), l.RxPackets, l.TxPackets, esc(l.Master), esc(peer))
}

// upWord is a link's state in a word: down unless IFF_UP, else the
// kernel's operstate.
func upWord(l network.Link) string {
	if !l.Up {
		return "down"
	}
	// A bridge or lo that reports no carrier state is up all the same
	// (IFF_UP): "unknown" would read as if stepbox did not know.
	if l.State == "" || l.State == "unknown" {
		return "up"
	}
	return l.State
}

// boxSpace is the namespace of box name in the map.
func boxSpace(m network.Map, name string) (network.Space, bool) {
	for _, sp := range m.Boxes {
		if sp.Name == name {
			return sp, true
		}
	}
	return network.Space{Name: name}, false
}

// boxLinks are a box's links but lo, which every namespace has.
func boxLinks(sp network.Space) []network.Link {
	var out []network.Link
	for _, l := range sp.Links {
		if l.Name != "lo" {
			out = append(out, l)
		}
	}
	return out
}

// routeText is a box's way out: its default route, or that it has none.
func routeText(x, y, w int, small float64, sp network.Space) string {
	for _, r := range sp.Routes {
		if r.Dst == "default" {
			return fmt.Sprintf(`<text x="%d" y="%d" class="route" data-ns="%s" data-dst="default" data-gw="%s" data-dev="%s">%s</text>`,
				x, y, esc(sp.Name), esc(r.Gw), esc(r.Dev), esc(routeWords(r.Gw, w, small)))
		}
	}
	return fmt.Sprintf(`<text x="%d" y="%d" class="route none dim" data-ns="%s">%s</text>`, x, y, esc(sp.Name), esc(fitWords("no default route", w, small)))
}

// routeWords is a default route in the words that fit w: "default via
// GW", else "via GW", the gateway always whole.
func routeWords(gw string, w int, small float64) string {
	if s := "default via " + gw; fit(s, w, small) == s {
		return s
	}
	return fitWords("via "+gw, w, small)
}
