package lessons

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"stepbox/primitives/network"
)

// Checks on the network: stepbox's bridge on the host side, each box's
// veth, address and default route, masquerade and a published port, all
// read from the network map (rtnetlink and nf_tables).

func init() {
	count := func(args []string) error {
		if len(args) == 1 {
			if n, err := strconv.Atoi(args[0]); err != nil || n < 1 {
				return fmt.Errorf("%q is not a number of boxes", args[0])
			}
		}
		return nil
	}
	boxFindings := map[string]string{
		"no-bridge":  "There is no bridge on the host side yet: `net bridge`.",
		"shares-net": "A box still shares the host's network namespace: `unshare net` in it first.",
		"no-veth":    "A box has no eth0 yet: `net veth` in it makes the pair, one end on the bridge.",
		"no-address": "A box's eth0 has no address: `net addr` gives it the next free one of the bridge's subnet.",
		"no-route":   "A box has no default route: `net route` sends what is not on its subnet to the bridge's address.",
		"wrong-route": "A box's default route goes to an address that is not the bridge's, so nothing forwards its packets: " +
			"`net route` replaces it with one via the bridge's address.",
		"too-few": "Fewer boxes are wired than the step asks for: make another, `unshare net`, and repeat the steps in it.",
	}
	perBox := func(name, summary string, level int) *Check {
		return &Check{
			Name: name, Usage: name + " [N]", MaxArgs: 1, Args: count, Summary: summary, Findings: boxFindings,
			Run: func(s *State, args []string) Result { return judgeWired(s, args, level) },
		}
	}
	register(
		&Check{
			Name: "net-bridge", Usage: "net-bridge", Summary: "a bridge of stepbox's on the host side, up, with its gateway address",
			Findings: map[string]string{
				"no-bridge":   "There is no bridge on the host side yet: `net bridge`.",
				"bridge-down": "The bridge is there but not up, or lacks its gateway address: make it again with `net bridge`.",
			},
			Run: runNetBridge,
		},
		perBox("net-wired", "N boxes (2 by default) each with an eth0 that is up, its other end on stepbox's bridge", 1),
		perBox("net-addressed", "N boxes each with an address of the bridge's subnet on eth0", 2),
		perBox("net-routed", "N boxes each with a default route via the bridge's address", 3),
		&Check{
			Name: "net-masquerade", Usage: "net-masquerade", Summary: "a masquerade rule for the bridge's subnet in stepbox's table, and ip_forward",
			Findings: map[string]string{
				"no-bridge": "There is no bridge on the host side yet: `net bridge`.",
				"no-nat":    "Nothing rewrites the boxes' source address yet: `net nat`.",
			},
			Run: func(s *State, _ []string) Result {
				if len(s.Boxes) == 0 {
					return fail("no-box", "no boxes in this session")
				}
				if s.Net == nil || len(s.Net.Bridges) == 0 {
					return fail("no-bridge", "no bridge of stepbox's")
				}
				for _, r := range s.Net.Rules {
					if r.Chain == "postrouting" && strings.HasPrefix(r.Comment, "stepbox nat") && strings.HasSuffix(r.Text, "masquerade") {
						return pass("postrouting: %s", r.Text)
					}
				}
				return fail("no-nat", "no masquerade rule in table ip %s", network.Table)
			},
		},
		&Check{
			Name: "net-published", Usage: "net-published PORT", MinArgs: 1, MaxArgs: 1, Args: count,
			Summary: "host port PORT is published to a box, and the host side has reached it (the output chain's DNAT rule counted a packet)",
			Findings: map[string]string{
				"not-published": "No box's port is published on that host port yet: `net publish 8080:80` in the box with the server.",
				"not-reached":   "The port is published, but nothing on the host side has used it yet: `!busybox wget -q -O - http://127.0.0.1:8080/`.",
			},
			Run: runNetPublished,
		},
	)
}

func runNetBridge(s *State, _ []string) Result {
	if len(s.Boxes) == 0 {
		return fail("no-box", "no boxes in this session")
	}
	if s.Net == nil || len(s.Net.Bridges) == 0 {
		return fail("no-bridge", "no bridge of stepbox's")
	}
	br := s.Net.Bridges[0]
	l, ok := s.Net.Host.Link(br.Name)
	if !ok || !l.Up || !hasAddr(l, br.Gateway) {
		return fail("bridge-down", "bridge %s: up %v, addresses %v", br.Name, l.Up, l.Addrs)
	}
	return pass("bridge %s is up on the host side with %s, subnet %s", br.Name, br.Gateway, br.Subnet)
}

func hasAddr(l network.Link, ip string) bool {
	for _, a := range l.Addrs {
		if strings.HasPrefix(a, ip+"/") {
			return true
		}
	}
	return false
}

// judgeWired passes when N boxes reach the level: 1 a veth up on the
// bridge, 2 an address of its subnet, 3 a default route via its gateway.
func judgeWired(s *State, args []string, level int) Result {
	if len(s.Boxes) == 0 {
		return fail("no-box", "no boxes in this session")
	}
	want := 2
	if len(args) == 1 {
		want, _ = strconv.Atoi(args[0])
	}
	if s.Net == nil || len(s.Net.Bridges) == 0 {
		return fail("no-bridge", "no bridge of stepbox's")
	}
	br := s.Net.Bridges[0]
	_, subnet, _ := net.ParseCIDR(br.Subnet)
	var good []string
	var first *Result
	for _, b := range s.live() {
		r := boxWired(s, b, br, subnet, level)
		r.Box = b.Name
		if r.Pass {
			good = append(good, b.Name)
		} else if first == nil {
			first = &r
		}
	}
	if len(good) >= want {
		return pass("boxes %s are wired", strings.Join(good, ", "))
	}
	if first != nil {
		return *first
	}
	return fail("too-few", "%d of %d boxes wired: %s", len(good), want, strings.Join(good, ", "))
}

func boxWired(s *State, b *BoxState, br network.Bridge, subnet *net.IPNet, level int) Result {
	if !b.ownNamespace("net") {
		return fail("shares-net", "box %s is in the host's network namespace", b.Name)
	}
	var sp *network.Space
	for i := range s.Net.Boxes {
		if s.Net.Boxes[i].Name == b.Name {
			sp = &s.Net.Boxes[i]
		}
	}
	eth0, ok := network.Link{}, false
	if sp != nil {
		eth0, ok = sp.Link(network.BoxIf)
	}
	onBridge := false
	for end, owner := range s.Net.Owners {
		if l, found := s.Net.Host.Link(end); owner == b.Name && found && l.Master == br.Name {
			onBridge = true
		}
	}
	if !ok || !eth0.Up || !onBridge {
		return fail("no-veth", "box %s: no eth0 up with its other end on %s", b.Name, br.Name)
	}
	if level >= 2 {
		inSubnet := false
		for _, a := range eth0.Addrs {
			if ip, _, err := net.ParseCIDR(a); err == nil && subnet.Contains(ip) {
				inSubnet = true
			}
		}
		if !inSubnet {
			return fail("no-address", "box %s: eth0 has %v, nothing of %s", b.Name, eth0.Addrs, br.Subnet)
		}
	}
	if level >= 3 {
		var wrong []string
		routed := false
		for _, r := range sp.Routes {
			if r.Dst == "default" && r.Gw == br.Gateway {
				routed = true
			} else if r.Dst == "default" {
				wrong = append(wrong, "via "+r.Gw+" dev "+r.Dev)
			}
		}
		if !routed && len(wrong) > 0 {
			return fail("wrong-route", "box %s: its default route goes %s, not via the bridge's address %s", b.Name, strings.Join(wrong, ", "), br.Gateway)
		}
		if !routed {
			return fail("no-route", "box %s: no default route via %s", b.Name, br.Gateway)
		}
	}
	return pass("box %s is wired", b.Name)
}

func runNetPublished(s *State, args []string) Result {
	if len(s.Boxes) == 0 {
		return fail("no-box", "no boxes in this session")
	}
	if s.Net == nil {
		return fail("not-published", "no network steps yet")
	}
	word := "th dport " + args[0] + " "
	for _, r := range s.Net.Rules {
		if r.Chain != "output" || !strings.Contains(r.Text, word) {
			continue
		}
		if r.Packets == 0 {
			return fail("not-reached", "output: %s", r.Text)
		}
		return pass("output: %s", r.Text)
	}
	return fail("not-published", "no DNAT rule for port %s in table ip %s", args[0], network.Table)
}
