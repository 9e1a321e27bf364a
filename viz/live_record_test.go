package viz

import (
	"html"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"stepbox/primitives/network"
)

// hairpinTrace is lesson 7's climax: web2 fetches web1's page through
// the host's published port, and the hairpin masquerade answers.
func hairpinTrace() network.Trace {
	return network.Trace{Box: "web2", Dst: "172.20.0.1",
		Routes: []string{"box web2: ip route get 172.20.0.1 → dev eth0 src 172.20.0.3"},
		Hops:   []network.Hop{{Space: "web2", Link: "eth0", Rx: 5, Tx: 6}, {Space: "host", Link: "stepbox0", Rx: 6, Tx: 5}, {Space: "web1", Link: "eth0", Rx: 6, Tx: 5}},
		Rules: []network.RuleDelta{
			{Chain: "prerouting", Text: "fib daddr type local meta l4proto tcp th dport 8080 counter dnat to 172.20.0.2:80", Packets: 1},
			{Chain: "postrouting", Text: `ip saddr 172.20.0.0/24 oifname "stepbox0" ip daddr 172.20.0.2 tcp dport 80 ct status dnat counter masquerade`, Packets: 1},
		},
		Flows: []string{"tcp 172.20.0.3:44178 → 172.20.0.1:8080, reply 172.20.0.2:80 → 172.20.0.1:44178 · DNAT to 172.20.0.2:80 · SNAT to 172.20.0.1"},
		Packets: []network.TracedPacket{{Packet: "tcp 172.20.0.3:44178 → 172.20.0.1:8080", Path: []string{
			`ip stepbox prerouting in stepbox0: rule "dnat to 172.20.0.2:80" (handle 9) → accept`}}},
	}
}

// TestLivePageDrawsNetTraceInPlaceOfTheExecRecord: after `net trace`
// the page's record is the trace (hops, rules, conntrack, nft trace),
// not the plain exec it ran, and the box's output shows beside it.
func TestLivePageDrawsNetTraceInPlaceOfTheExecRecord(t *testing.T) {
	s := liveNetState(2)
	s.Line = "net trace busybox wget -qO- http://172.20.0.1:8080/"
	s.Step.Command = "exec busybox wget -qO- http://172.20.0.1:8080/"
	tr := hairpinTrace()
	s.Trace = &tr
	s.Output = []string{"hello from web1"}
	page := LivePage(s)
	for _, want := range []string{
		`<section id="step" class="trace"><h2>last step: <code>net trace busybox wget -qO- http://172.20.0.1:8080/</code>`,
		`data-space="host" data-link="stepbox0" data-rx="6" data-tx="5"`,
		`<li class="rule" data-chain="postrouting" data-packets="1"><code>postrouting +1 … masquerade</code>`,
		`<code>prerouting +1 … dnat to 172.20.0.2:80</code>`,
		"conntrack: tcp 172.20.0.3:44178 → 172.20.0.1:8080",
		"SNAT to 172.20.0.1",
		`ip stepbox prerouting in stepbox0: rule &#34;dnat to 172.20.0.2:80&#34;`,
		`<pre class="out">hello from web1</pre>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page after net trace lacks %s", want)
		}
	}
	if strings.Contains(page, "last step: <code>exec busybox") {
		t.Error("the page calls net trace a plain exec")
	}
	checkPanelGolden(t, "live_page_trace.golden", page)
}

// TestOutputHTMLEscapesTheBoxsOutputAndKeepsItsTail: a box's output is
// untrusted: no tag, no control character reaches the page.
func TestOutputHTMLEscapesTheBoxsOutputAndKeepsItsTail(t *testing.T) {
	got := OutputHTML("exec sh", []string{"zero", "one", "two", "three", "<script>alert(1)</script>", "\x1b]0;owned\x07", "", "RTNETLINK answers: Network is unreachable"})
	for _, bad := range []string{"<script>", "\x1b", "\x07", ">zero<"} {
		if strings.Contains(got, bad) {
			t.Errorf("the output tail carries %q:\n%s", bad, got)
		}
	}
	for _, want := range []string{"&lt;script&gt;", `\x1b]0;owned\x07`, "RTNETLINK answers: Network is unreachable</pre>", `data-cut="1"`, "… 4 more lines", `<pre class="out spare">one</pre>`} {
		if !strings.Contains(got, want) {
			t.Errorf("the output tail lacks %q:\n%s", want, got)
		}
	}
	if OutputHTML("exec true", nil) != "" {
		t.Error("a command that printed nothing gets an output box")
	}
}

// TestNetSVGCountsEveryRuleOfAPublishedPort: the hairpin masquerade
// that answers lesson 7's trace has its line and its count, and the
// DNAT target is drawn whole.
func TestNetSVGCountsEveryRuleOfAPublishedPort(t *testing.T) {
	m := webNet()
	tag := "stepbox publish web1 8080/tcp"
	m.Rules = append(m.Rules,
		network.Rule{Chain: "postrouting", Packets: 0, Text: `ip saddr 127.0.0.0/8 oifname "stepbox0" counter packets 0 bytes 0 masquerade`, Comment: tag},
		network.Rule{Chain: "postrouting", Packets: 1, Text: `ip saddr 172.20.0.0/24 oifname "stepbox0" counter packets 1 bytes 60 masquerade`, Comment: tag})
	for _, svg := range []string{NetSVG(m), netSVG(m, narrowNet)} {
		for _, want := range []string{"DNAT: outside 0 · host 1", "masquerade: host 0 · hairpin 1", "→ box web1 172.20.0.2:80<"} {
			if !strings.Contains(svg, want) {
				t.Errorf("the map lacks %q:\n%s", want, svg)
			}
		}
	}
}

// TestStepHTMLKeepsShellLinesWhole: a shell line is wrapped by the
// page, never cut in its middle, where a cut made PID 32644 read as
// "3264…600".
func TestStepHTMLKeepsShellLinesWhole(t *testing.T) {
	st := failedRecord()
	line := "nsenter --target 32644 --mount --uts --ipc --net --pid -- /bin/sh -c 'sleep 3600 >/dev/null 2>&1 &'"
	st.Shell = []string{line}
	if got := StepHTML(st); !strings.Contains(got, esc(line)) {
		t.Errorf("the shell line is not whole:\n%s", got)
	}
	// A line too long for two lines on the page loses its end, at a
	// space: the PID stays whole.
	long := "nsenter --target 32644 --mount --uts --ipc --net --pid -- /bin/sh -c 'wget -qO- http://172.20.0.1:8080/ && echo and more and more'"
	st.Shell = []string{long}
	got := StepHTML(st)
	if !strings.Contains(got, "nsenter --target 32644 --mount") || !strings.Contains(got, " …</pre>") && !strings.Contains(got, "…</pre>") {
		t.Errorf("the long shell line is not cut at its end:\n%s", got)
	}
	if cut := cutEnd("a 123456789", 8); cut != "a …" {
		t.Errorf("cutEnd cut a number: %q", cut)
	}
}

// TestTwoBoxesKeepTheirPlaceAndMarkTheCurrent: the page draws boxes in
// the order it is given (their creation) and marks the current one.
func TestTwoBoxesKeepTheirPlaceAndMarkTheCurrent(t *testing.T) {
	s := liveState()
	s.Boxes[1].Current = true
	page := LivePage(s)
	web, db := strings.Index(page, `data-box="web"`), strings.Index(page, `<section class="box current" data-box="db"><h2>box db <span class="current">◀ current</span>`)
	if web < 0 || db < 0 || db < web {
		t.Errorf("want web first and db marked current after it:\n%s", page)
	}
}

// TestAProcessNameNeverRunsIntoItsPID: a long command is cut before the
// PID, measured at the size it is drawn (busybox httpd's "/mnt" ran
// into "22671" on the projector).
func TestAProcessNameNeverRunsIntoItsPID(t *testing.T) {
	root := webProcesses().Children[0]
	sleep := root.Children[0].Children[0].Children[0]
	sleep.PID, sleep.NSpid, sleep.Cmdline = 22671, []int{22671}, "busybox httpd -f -p 80 -h /mnt/www/pages/of/the/box"
	svg := namespaceSVG(webNamespaces(), webBefore(), root, narrowNS)
	m := regexp.MustCompile(`data-pid="22671"[^>]*><rect x="(\d+)"[^>]*/><text x="(\d+)" y="\d+">([^<]*)</text><text x="(\d+)" y="\d+" class="pid">([^<]*)</text>`).FindStringSubmatch(svg)
	if m == nil {
		t.Fatalf("no pill for PID 22671:\n%s", svg)
	}
	atoi := func(s string) float64 { n, _ := strconv.Atoi(s); return float64(n) }
	nameEnd := atoi(m[2]) + float64(len([]rune(html.UnescapeString(m[3]))))*svgText*svgCharEm
	pidStart := atoi(m[4]) - float64(len([]rune(m[5])))*svgSmallNarrow*svgCharEm
	if nameEnd+svgSmallNarrow*svgCharEm > pidStart {
		t.Errorf("the name %q ends at %.0f, the PID %q starts at %.0f: no space between them", m[3], nameEnd, m[5], pidStart)
	}
}

// TestABridgeWithNoCarrierStateReadsUp: a bridge's operstate "unknown"
// is drawn as the link being up, never as "gateway · unknown".
func TestABridgeWithNoCarrierStateReadsUp(t *testing.T) {
	m := webNet()
	m.Host.Links[1].State = "unknown"
	if svg := NetSVG(m); strings.Contains(svg, "unknown") || !strings.Contains(svg, "gateway · link up") {
		t.Errorf("the bridge's line reads:\n%s", svg)
	}
}

// TestTwoBoxesAndTheMapPutTheMapBesideAndTheRestInALine: with two boxes
// and the map, the map is a third column at full size and each box's
// cgroup and stack are a line under its namespaces, limits and refused
// forks included, so nothing is drawn small.
func TestTwoBoxesAndTheMapPutTheMapBesideAndTheRestInALine(t *testing.T) {
	page := LivePage(liveNetState(2))
	for _, want := range []string{
		`<div id="boxes" class="boxes n2 map">`,
		`<svg id="net" class="panel large" viewBox="0 0 460 `,
		`<span class="what">cgroup</span> memory 32.0M / 32M · pids 20 / 20`,
		`forks refused 37`,
		`<span class="what">layers</span> base → app → web → upper +1 ~1 -1`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("two boxes and the map lack %s", want)
		}
	}
	if strings.Contains(page, `id="cgroup"`) || strings.Contains(page, `id="stack"`) {
		t.Error("two boxes and the map still draw a cgroup or stack panel, which shrinks the page's text")
	}
}

// TestTheMapNeverCutsANumber: at every size the page draws it, the map
// drops words that do not fit rather than cut an inode or an address
// ("ns 402653…", "default via 172.2…" read as other numbers).
func TestTheMapNeverCutsANumber(t *testing.T) {
	cut := regexp.MustCompile(`[0-9]…`)
	for _, size := range []svgSize{wideSize, narrowNet, aloneNet} {
		svg := netSVG(webNet(), size)
		if m := cut.FindAllString(svg, -1); m != nil {
			t.Errorf("at width %d the map cuts numbers: %q", size.w, m)
		}
		if !strings.Contains(svg, "via 172.20.0.1<") {
			t.Errorf("at width %d the map has no whole gateway", size.w)
		}
	}
}
