package repl

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// netLink is one link the page's network map draws.
type netLink struct {
	NS, Name, Kind, Addrs, Master, PeerBox string
	Up                                     bool
	Rx, Tx                                 uint64
}

// netElements is the network map as the live page shows it, read from
// the drawing's data-* attributes.
type netElements struct {
	Seq    int
	Map    bool
	Hint   bool
	Chips  []struct{ Box, Types string }
	Links  []netLink
	Routes []struct{ NS, Gw, Dev string }
	Ports  []struct {
		Box, Addr, Proto  string
		HostPort, BoxPort int
	}
	// The boxes' sections in page order, and the one marked current.
	Order   []string
	Current []string
	// The record of `net trace`: its hops, rules, and the output tail.
	Trace bool
	Hops  []struct {
		Space, Link string
		Rx, Tx      uint64
	}
	Rules                          []struct{ Chain string }
	Hairpin                        int
	Output                         string
	ScrollW, ScrollH, ViewW, ViewH int
}

const readNetMap = `(() => {
	const q = s => Array.from(document.querySelectorAll(s));
	return {
		seq: Number(document.getElementById("now").dataset.seq),
		map: !!document.getElementById("net"),
		chips: q("section.box g.ns").map(g => ({box: g.closest("section.box").dataset.box, types: g.dataset.types})),
		links: q("#net g.link").map(g => ({ns: g.dataset.ns, name: g.dataset.name, kind: g.dataset.kind, addrs: g.dataset.addrs,
			master: g.dataset.master, peerBox: g.dataset.peerBox, up: g.dataset.up === "true", rx: Number(g.dataset.rx), tx: Number(g.dataset.tx)})),
		routes: q("#net text.route").map(t => ({ns: t.dataset.ns, gw: t.dataset.gw || "", dev: t.dataset.dev || ""})),
		ports: q("#net g.published").map(g => ({box: g.dataset.box, addr: g.dataset.addr, proto: g.dataset.proto,
			hostPort: Number(g.dataset.hostPort), boxPort: Number(g.dataset.boxPort)})),
		order: q("section.box").map(b => b.dataset.box),
		current: q("section.box.current").map(b => b.dataset.box),
		trace: !!document.querySelector("#step.trace"),
		hops: q("#step.trace li.hop[data-link]").map(l => ({space: l.dataset.space, link: l.dataset.link, rx: Number(l.dataset.rx), tx: Number(l.dataset.tx)})),
		rules: q("#step.trace li.rule").map(l => ({chain: l.dataset.chain})),
		output: q("#output pre.out").map(p => p.textContent).join("\n"),
		hairpin: q("#net g.nat.publish[data-what=masquerade]").map(g => Number(g.dataset.packets.split(",")[1]))[0] || 0,
		scrollW: document.documentElement.scrollWidth, scrollH: document.documentElement.scrollHeight,
		viewW: innerWidth, viewH: innerHeight,
	};
})()`

// kernelLink is one link as `ip -j -s addr` reports it.
type kernelLink struct {
	Ifname   string   `json:"ifname"`
	Flags    []string `json:"flags"`
	Master   string   `json:"master"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		Prefixlen int    `json:"prefixlen"`
	} `json:"addr_info"`
	Stats64 struct {
		Rx, Tx struct{ Packets uint64 }
	} `json:"stats64"`
}

// kernelLinks reads the links of the network namespace at nsPath with
// Debian's ip, by name.
func kernelLinks(t *testing.T, nsPath string) map[string]kernelLink {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+nsPath, "ip", "-j", "-s", "addr").Output()
	if err != nil {
		t.Fatalf("ip -j -s addr in %s: %v", nsPath, err)
	}
	var links []kernelLink
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatal(err)
	}
	m := map[string]kernelLink{}
	for _, l := range links {
		m[l.Ifname] = l
	}
	return m
}

// v4 is a link's IPv4 addresses as the page writes them.
func (l kernelLink) v4() string {
	var a []string
	for _, ai := range l.AddrInfo {
		if ai.Family == "inet" {
			a = append(a, fmt.Sprintf("%s/%d", ai.Local, ai.Prefixlen))
		}
	}
	return strings.Join(a, " ")
}

// TestLiveViewDrawsTheNetworkMap wires two boxes to a bridge with the
// live page open in headless Chromium, and after each step compares the
// page's network map with the kernel's links, addresses, counters,
// routes and nft rules. The host side is a network namespace the test
// made (STEPBOX_NET_HOST_NS); the machine's own network is not touched,
// and the made one is as it was once the session is closed.
func TestLiveViewDrawsTheNetworkMap(t *testing.T) {
	browser := needChromium(t)
	sh, out, host := netShell(t)
	before := host.state(t)
	if err := sh.StartWeb("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sh.StopWeb() })
	c := startChromium(t, browser)
	c.call(t, "Page.navigate", map[string]any{"url": sh.web.srv.URL}, nil)
	c.waitSeq(t, 0)
	shots := artifactDir(t, "live-view-network")
	nsOf := func(box string) string {
		b, err := sh.Session.Box(box)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("/proc/%d/ns/net", b.PID())
	}
	// wired checks every link the page draws against the kernel: the
	// bridge and its ports on the host side, each box's eth0; counters
	// read after the page's can only have grown.
	wired := func(t *testing.T, p netElements, boxes ...string) {
		t.Helper()
		k := map[string]map[string]kernelLink{"host": kernelLinks(t, host.Path)}
		for _, b := range boxes {
			k[b] = kernelLinks(t, nsOf(b))
		}
		var ports []string
		for _, l := range p.Links {
			kl, ok := k[l.NS][l.Name]
			if !ok {
				t.Errorf("the page draws %s in %s; the kernel has no such link there", l.Name, l.NS)
				continue
			}
			if l.Addrs != kl.v4() || l.Master != kl.Master || l.Up != slices.Contains(kl.Flags, "UP") {
				t.Errorf("%s in %s drawn with addresses %q, master %q, up %v; the kernel has %q, %q, %v", l.Name, l.NS, l.Addrs, l.Master, l.Up, kl.v4(), kl.Master, kl.Flags)
			}
			if l.Rx > kl.Stats64.Rx.Packets || l.Tx > kl.Stats64.Tx.Packets {
				t.Errorf("%s in %s drawn with rx %d tx %d packets; the kernel counted %d and %d since", l.Name, l.NS, l.Rx, l.Tx, kl.Stats64.Rx.Packets, kl.Stats64.Tx.Packets)
			}
			if l.Master != "" {
				ports = append(ports, l.PeerBox)
				peer, ok := k[l.PeerBox]["eth0"]
				// The host end's transmitted packets are the box end's received.
				if !ok {
					t.Errorf("port %s drawn as box %s's, which has no eth0", l.Name, l.PeerBox)
				} else if l.Tx > peer.Stats64.Rx.Packets {
					t.Errorf("port %s sent %d packets, box %s's eth0 received only %d", l.Name, l.Tx, l.PeerBox, peer.Stats64.Rx.Packets)
				}
			}
		}
		slices.Sort(ports)
		if want := slices.Sorted(slices.Values(boxes)); !slices.Equal(ports, want) {
			t.Errorf("ports drawn on the bridge lead to boxes %v, want %v", ports, want)
		}
		for _, b := range boxes {
			if !slices.ContainsFunc(p.Links, func(l netLink) bool { return l.NS == b && l.Name == "eth0" }) {
				t.Errorf("box %s's eth0 is not drawn", b)
			}
		}
	}
	routed := func(t *testing.T, p netElements, box string) {
		t.Helper()
		out, err := exec.Command("nsenter", "--net="+nsOf(box), "ip", "-j", "route", "show", "default").Output()
		if err != nil {
			t.Fatal(err)
		}
		var rs []struct{ Gateway, Dev string }
		if err := json.Unmarshal(out, &rs); err != nil {
			t.Fatal(err)
		}
		for _, r := range p.Routes {
			if r.NS == box {
				if len(rs) != 1 || r.Gw != rs[0].Gateway || r.Dev != rs[0].Dev {
					t.Errorf("box %s's default route drawn via %s dev %s; the kernel has %+v", box, r.Gw, r.Dev, rs)
				}
				return
			}
		}
		t.Errorf("box %s's route is not drawn", box)
	}
	steps := []struct {
		line  string
		check func(t *testing.T, p netElements)
	}{
		{"new a", func(t *testing.T, p netElements) {
			if p.Map {
				t.Error("a session with no network step draws a network map")
			}
		}},
		{"unshare uts ipc net mnt pid", nil},
		{"net bridge", func(t *testing.T, p netElements) {
			if !p.Map || len(p.Links) != 1 || p.Links[0].Kind != "bridge" {
				t.Fatalf("after net bridge the page draws %+v, want the bridge alone", p.Links)
			}
			br := kernelLinks(t, host.Path)[p.Links[0].Name]
			if p.Links[0].Addrs != br.v4() || br.v4() == "" {
				t.Errorf("bridge drawn with %q; the kernel's has %q", p.Links[0].Addrs, br.v4())
			}
		}},
		{"net veth", func(t *testing.T, p netElements) {
			wired(t, p, "a")
			// No way out yet: a warning's colour, not the good green.
			var fill, warn string
			c.eval(t, `getComputedStyle(document.querySelector("#net text.route.none")).fill`, &fill)
			c.eval(t, `(() => { const s = document.createElement("span"); s.style.color = "var(--warn)"; document.body.append(s);
				const c = getComputedStyle(s).color; s.remove(); return c; })()`, &warn)
			if fill != warn {
				t.Errorf("\"no default route\" is drawn in %s, want the warning colour %s", fill, warn)
			}
		}},
		{"net addr", func(t *testing.T, p netElements) { wired(t, p, "a") }},
		{"net route", func(t *testing.T, p netElements) { wired(t, p, "a"); routed(t, p, "a") }},
		// A whole box and its network still fit one screen.
		{"mount overlay base", nil},
		{"pivot_root", nil},
		{"cgroup new", nil},
		{"cgroup attach", func(t *testing.T, p netElements) {
			wired(t, p, "a")
			routed(t, p, "a")
			checkTextSize(t, c, "one box and the network map", 16)
		}},
		{"new b", nil},
		{"unshare net", nil},
		{"net veth", nil},
		{"net addr", nil},
		{"net route", func(t *testing.T, p netElements) { wired(t, p, "a", "b"); routed(t, p, "a"); routed(t, p, "b") }},
		{"exec busybox ping -c2 -W2 172.20.0.2", func(t *testing.T, p netElements) {
			wired(t, p, "a", "b")
			for _, l := range p.Links {
				if l.NS == "b" && l.Name == "eth0" && l.Tx < 2 {
					t.Errorf("after two pings box b's eth0 is drawn with %d packets sent", l.Tx)
				}
			}
		}},
		{"use a", nil},
		// Lesson 7's web server, in box a.
		{"exec mount -t tmpfs www /mnt", nil},
		{"exec sh -c 'echo hello from a > /mnt/index.html'", nil},
		{"exec busybox httpd -p 80 -h /mnt", nil},
		{"net publish 8080:80", func(t *testing.T, p netElements) {
			if len(p.Ports) != 1 || p.Ports[0].Box != "a" || p.Ports[0].HostPort != 8080 || p.Ports[0].BoxPort != 80 || p.Ports[0].Proto != "tcp" {
				t.Fatalf("published ports drawn as %+v, want host 8080/tcp to box a port 80", p.Ports)
			}
			rules := host.sh(t, "nft list table ip stepbox")
			if want := fmt.Sprintf("dnat to %s:80", p.Ports[0].Addr); !strings.Contains(rules, "dport 8080") || !strings.Contains(rules, want) {
				t.Errorf("the page publishes 8080 to %s:80; the kernel's rules are\n%s", p.Ports[0].Addr, rules)
			}
			if eth0 := kernelLinks(t, nsOf("a"))["eth0"].v4(); !strings.HasPrefix(eth0, p.Ports[0].Addr+"/") {
				t.Errorf("the port leads to %s; box a's eth0 has %s", p.Ports[0].Addr, eth0)
			}
			// A whole box, a second one and the map: still readable.
			checkTextSize(t, c, "two boxes and the network map", 16)
		}},
		// `use` changes the current box, never the boxes' places.
		{"use b", func(t *testing.T, p netElements) {
			if !slices.Equal(p.Order, []string{"a", "b"}) || !slices.Equal(p.Current, []string{"b"}) {
				t.Errorf("after use b the page draws boxes %v with %v current, want [a b] with b current", p.Order, p.Current)
			}
		}},
		// The trace's answer reaches the page: what the kernel counted
		// hop by hop, as the terminal printed it, and what the box said.
		// Lesson 7's climax: b reaches a through the host's published
		// port, and the hairpin masquerade answers.
		{"net trace wget -q -T 5 -O - http://172.20.0.1:8080/", func(t *testing.T, p netElements) {
			sh.web.mu.Lock()
			tr := sh.web.trace
			sh.web.mu.Unlock()
			if !p.Trace || tr == nil {
				t.Fatalf("after net trace the page shows no trace (page %v, shell %v)", p.Trace, tr != nil)
			}
			if len(tr.Hops) == 0 || len(p.Hops) != len(tr.Hops) {
				t.Fatalf("the page draws hops %+v; the trace counted %+v", p.Hops, tr.Hops)
			}
			for i, h := range tr.Hops {
				if p.Hops[i].Space != h.Space || p.Hops[i].Link != h.Link || p.Hops[i].Rx != h.Rx || p.Hops[i].Tx != h.Tx {
					t.Errorf("hop %d drawn as %+v; the trace counted %+v", i, p.Hops[i], h)
				}
			}
			if p.Hops[0].Space != "b" || p.Hops[0].Tx == 0 {
				t.Errorf("the first hop drawn is %+v, want box b's eth0 sending", p.Hops[0])
			}
			if len(p.Rules) != len(tr.Rules) {
				t.Errorf("the page draws %d rules that counted; the trace has %d", len(p.Rules), len(tr.Rules))
			}
			if !strings.Contains(p.Output, "hello from a") {
				t.Errorf("the page's output tail is %q, want box a's page", p.Output)
			}
			if !slices.ContainsFunc(p.Rules, func(r struct{ Chain string }) bool { return r.Chain == "postrouting" }) {
				t.Errorf("the page's trace lists rules %+v: no masquerade in postrouting", p.Rules)
			}
			// The map's counters are read again after the trace: the
			// hairpin masquerade that fired shows its packet.
			if p.Hairpin < 1 {
				t.Errorf("after the hairpin the map draws %d hairpin masquerade packets", p.Hairpin)
			}
			checkTextSize(t, c, "net trace beside two boxes and the map", 16)
		}},
		{"!echo '<b>not bold</b>'", func(t *testing.T, p netElements) {
			if p.Trace || p.Output != "<b>not bold</b>" {
				t.Errorf("after a host command the page shows trace %v and output %q, want its output as text", p.Trace, p.Output)
			}
		}},
	}
	for i, s := range steps {
		run(t, sh, out, s.line)
		p := readRedraw[netElements](t, sh, c, s.line, readNetMap)
		if s.check != nil {
			s.check(t, p)
		}
		// Each namespace is one chip, whatever types it covers.
		for _, chip := range p.Chips {
			if chip.Types == "" {
				t.Errorf("after %q a namespace chip of box %s names no type", s.line, chip.Box)
			}
		}
		keepShot(t, c, shots, i+1, s.line)
		if p.ScrollW > p.ViewW || p.ScrollH > p.ViewH {
			t.Errorf("after %q the page is %d×%d, more than the %d×%d screen", s.line, p.ScrollW, p.ScrollH, p.ViewW, p.ViewH)
		}
	}
	// The light theme, for a lit room.
	for _, typ := range []string{"keyDown", "keyUp"} {
		c.call(t, "Input.dispatchKeyEvent", map[string]any{"type": typ, "key": "t", "text": "t"}, nil)
	}
	keepShot(t, c, shots, len(steps)+1, "light")
	if err := sh.StopWeb(); err != nil {
		t.Error(err)
	}
	if err := sh.Session.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if after := host.state(t); after != before {
		t.Errorf("teardown left the host side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
