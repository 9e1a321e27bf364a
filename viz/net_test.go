package viz

import (
	"fmt"
	"strings"
	"testing"

	"stepbox/primitives/network"
)

// webNet is the map after the two-web-server session of lesson 7, with
// its numbers (net ns inodes, counters) from a real run.
func webNet() network.Map {
	eth0 := func(addr string, rx, tx uint64) network.Link {
		return network.Link{Index: 2, Name: "eth0", Kind: "veth", State: "up", Up: true, MTU: 1500, Addrs: []string{addr}, RxPackets: rx, TxPackets: tx}
	}
	lo := network.Link{Index: 1, Name: "lo", Kind: "device", State: "unknown", Up: true, MTU: 65536, Addrs: []string{"127.0.0.1/8"}}
	box := func(name, addr string, rx, tx uint64) network.Space {
		return network.Space{Name: name, Ino: 4026532245, Links: []network.Link{eth0(addr, rx, tx), lo}, Routes: []network.Route{
			{Dst: "default", Gw: "172.20.0.1", Dev: "eth0", Scope: "universe"},
			{Dst: "172.20.0.0/24", Dev: "eth0", Scope: "link", Src: strings.TrimSuffix(addr, "/24")},
		}}
	}
	return network.Map{
		Host: network.Space{Name: "host", Ino: 4026532243, Links: []network.Link{
			lo,
			{Index: 2, Name: "stepbox0", Kind: "bridge", State: "up", Up: true, MTU: 1500, Addrs: []string{"172.20.0.1/24"}, RxPackets: 3, TxPackets: 3},
			{Index: 3, Name: "veth62604c2d", Kind: "veth", State: "up", Up: true, MTU: 1500, Master: "stepbox0", RxPackets: 3, TxPackets: 7},
			{Index: 4, Name: "veth059177b9", Kind: "veth", State: "up", Up: true, MTU: 1500, Master: "stepbox0", RxPackets: 3, TxPackets: 4},
		}, Routes: []network.Route{{Dst: "172.20.0.0/24", Dev: "stepbox0", Scope: "link", Src: "172.20.0.1"}}},
		Boxes:   []network.Space{box("web1", "172.20.0.2/24", 7, 3), box("web2", "172.20.0.3/24", 4, 3)},
		Bridges: []network.Bridge{{Name: "stepbox0", Subnet: "172.20.0.0/24", Gateway: "172.20.0.1"}},
		Owners:  map[string]string{"veth62604c2d": "web1", "veth059177b9": "web2"},
		Rules: []network.Rule{
			{Chain: "prerouting", Text: "fib daddr type local meta l4proto tcp th dport 8080 counter packets 0 bytes 0 dnat to 172.20.0.2:80", Comment: "stepbox publish web1 8080/tcp"},
			{Chain: "output", Packets: 1, Text: "fib daddr type local meta l4proto tcp th dport 8080 counter packets 1 bytes 60 dnat to 172.20.0.2:80", Comment: "stepbox publish web1 8080/tcp"},
			{Chain: "postrouting", Text: `ip saddr 172.20.0.0/24 oifname != "stepbox0" counter packets 0 bytes 0 masquerade`, Comment: "stepbox nat stepbox0"},
		},
		Ports: []network.Published{{Box: "web1", Port: network.Port{Host: 8080, Box: 80, Proto: "tcp"}, Addr: "172.20.0.2"}},
	}
}

func TestNetPanelShowsEveryNamespaceWhoseVethIsWhoseAndTheRules(t *testing.T) {
	for _, theme := range []string{"plain", "color"} {
		for _, width := range []int{80, 160} {
			checkPanelGolden(t, fmt.Sprintf("net_%s_%d.golden", theme, width), NetPanel(webNet(), nil, width, NewTheme(theme)))
		}
	}
	// Right after `net veth`: both ends set up (IFF_UP), the carrier not
	// there yet. The map must not say "down".
	fresh := webNet()
	fresh.Host.Links[3].State, fresh.Boxes[1].Links[0].State = "lowerlayerdown", "down"
	if p := NetPanel(fresh, nil, 160, NewTheme("plain")); strings.Contains(p, "│ down") || strings.Count(p, "up · no carrier yet") != 2 {
		t.Errorf("links set up whose carrier is not there yet:\n%s", p)
	}
	got := NetPanel(webNet(), nil, 160, NewTheme("plain"))
	for _, want := range []string{"└─ veth62604c2d", "veth on stepbox0 ↔ box web1 eth0", "box web2 (net ns", "default via 172.20.0.1 dev eth0", "host :8080/tcp → box web1 172.20.0.2:80"} {
		if !strings.Contains(got, want) {
			t.Errorf("the map lacks %q:\n%s", want, got)
		}
	}
	// After a box's step, only its namespace.
	if part := NetPanel(webNet(), []string{"web2"}, 160, NewTheme("plain")); strings.Contains(part, "web1") || !strings.Contains(part, "172.20.0.3/24") {
		t.Errorf("the part for web2 alone:\n%s", part)
	}
}

func TestNetTracePanelFollowsTheHops(t *testing.T) {
	tr := network.Trace{Box: "web2", Dst: "172.20.0.1",
		Routes: []string{"box web2: ip route get 172.20.0.1 → dev eth0 src 172.20.0.3"},
		Hops: []network.Hop{{Space: "web2", Link: "eth0", Rx: 8, Tx: 7}, {Space: "host", Link: "veth0fcddae6", Rx: 7, Tx: 8},
			{Space: "host", Link: "stepbox0", Note: "switched it (a bridge counts only frames for the host side)"},
			{Space: "host", Link: "vethfcbcc508", Rx: 8, Tx: 7}, {Space: "web1", Link: "eth0", Rx: 8, Tx: 7}},
		Rules: []network.RuleDelta{{Chain: "prerouting", Text: "dnat to 172.20.0.2:80", Packets: 1}},
		Flows: []string{"tcp 172.20.0.3:44178 → 172.20.0.1:8080, reply 172.20.0.2:80 → 172.20.0.1:44178 · DNAT to 172.20.0.2:80 · source NAT (masquerade) to 172.20.0.1"},
		Packets: []network.TracedPacket{{Packet: "tcp 172.20.0.3:44178 → 172.20.0.1:8080", Path: []string{
			`ip stepbox prerouting in stepbox0: rule "fib daddr type local meta l4proto tcp th dport 8080 counter dnat to 172.20.0.2:80" (handle 9) → accept`,
			"ip stepbox forward in stepbox0 out stepbox0: rule \"iifname \\\"stepbox0\\\" counter accept\" (handle 6) → accept"}}},
		NftShell: []string{"nft add chain ip stepbox trace_from_box '{ type filter hook prerouting priority raw; policy accept; }'"},
	}
	panel := NetTracePanel(tr, 100, NewTheme("plain"))
	checkPanelGolden(t, "net_trace_plain_100.golden", panel)
	// Folded, never cut: the NAT address and the nft command are whole.
	flat := strings.Join(strings.Fields(panel), " ")
	for _, want := range []string{"source NAT (masquerade) to 172.20.0.1", `counter dnat to 172.20.0.2:80" (handle 9) → accept`,
		"policy accept; }'", "→ host stepbox0 switched it"} {
		if !strings.Contains(flat, want) {
			t.Errorf("the panel lacks %q:\n%s", want, panel)
		}
	}
	if strings.Contains(panel, "…") {
		t.Errorf("the panel cuts a line:\n%s", panel)
	}
	// A wget makes dozens of packets: the panel shows the first few.
	for range 10 {
		tr.Packets = append(tr.Packets, network.TracedPacket{Packet: "tcp"})
	}
	if p := NetTracePanel(tr, 100, NewTheme("plain")); !strings.Contains(p, "… and 3 packets more") {
		t.Errorf("the panel does not bound the traced packets:\n%s", p)
	}
}

// A box names its links, and a route, a hop, a neighbour entry or a
// traced packet repeats the name: the panels print it escaped, on one
// line (ut30 F6).
func TestNetPanelsEscapeTheLinkNamesABoxChose(t *testing.T) {
	evil := "v\x1b[2J\x1b]0;NET\a\nFORGED"
	m := network.Map{Boxes: []network.Space{{Name: "q", Ino: 1, Links: []network.Link{{Name: evil, Kind: "veth", Master: evil, Addrs: []string{"10.9.9.1/24"}}},
		Routes: []network.Route{{Dst: "10.9.9.0/24", Dev: evil, Scope: "link", Src: "10.9.9.1"}}}}}
	tr := network.Trace{Box: "q", Routes: []string{"ip route get → dev " + evil}, Hops: []network.Hop{{Space: "q", Link: evil, Rx: 1}},
		Neigh: []string{"10.9.9.2 dev " + evil}, Flows: []string{"tcp " + evil},
		Packets: []network.TracedPacket{{Packet: "in " + evil, Path: []string{"rule in " + evil}}}}
	for name, panel := range map[string]string{"net": NetPanel(m, nil, 120, NewTheme("plain")), "net trace": NetTracePanel(tr, 120, NewTheme("plain"))} {
		if strings.ContainsAny(panel, "\x1b\a") || strings.Contains(panel, "\nFORGED") || strings.Contains(panel, "│ FORGED") {
			t.Errorf("%s printed the box's link name raw:\n%q", name, panel)
		}
	}
}
