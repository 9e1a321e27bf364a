package viz

import (
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"

	"stepbox/primitives"
	"stepbox/primitives/network"
	"stepbox/primitives/rootfs"
)

// webBefore is box web's namespace table before `unshare ipc net mnt
// pid`: only its uts namespace is its own.
func webBefore() *primitives.NamespaceSnapshot {
	s := webNamespaces()
	s.InitPID = 0
	for i, r := range s.Rows {
		if r.Type != "uts" {
			s.Rows[i].Box = r.Host
		}
		s.Rows[i].Init = 0
	}
	return &s
}

// liveState is the page after `cgroup attach` in box web, with a second
// box db beside it and lesson 6 at its fourth step.
func liveState() LiveState {
	ns, st, cg := webNamespaces(), webStack(false), hybridSnapshot()
	db := webNamespaces()
	db.Box, db.BoxPID, db.InitPID = "db", 4311, 0
	for i := range db.Rows {
		db.Rows[i].Box, db.Rows[i].Init = db.Rows[i].Host, 0
	}
	return LiveState{
		Seq: 7, Line: "cgroup attach", Step: failedRecord(),
		Lesson: &LiveLesson{Number: 6, Steps: 9, Title: "Putting it together", Step: 4, StepTitle: "A cgroup of its own", Pass: true, Saw: "box web is in cgroup web-0123456789ab"},
		Boxes: []LiveBox{
			{Name: "web", Hostname: "web1", Stage: "uts,ipc,net,mnt,pid|pivot|cg", Namespaces: &ns, Before: webBefore(), Processes: webProcesses().Children[0], Stack: &st, Cgroup: &cg},
			{Name: "db", Namespaces: &db, Processes: webProcesses().Children[1]},
		},
	}
}

// drawings renders each live-view drawing from its recorded snapshots.
var drawings = map[string]func() string{
	"svg_ns": func() string { return NamespaceSVG(webNamespaces(), webBefore(), webProcesses().Children[0]) },
	"svg_ns_host": func() string {
		b := webBefore()
		b.Rows[len(b.Rows)-1].Box = b.Rows[len(b.Rows)-1].Host
		return NamespaceSVG(*b, nil, nil)
	},
	"svg_stack":      func() string { return StackSVG(webStack(false)) },
	"svg_stack_tall": func() string { return StackSVG(tallStack()) },
	"svg_cgroup_v1":  func() string { return CgroupSVG(hybridSnapshot()) },
	"svg_cgroup_v2":  func() string { return CgroupSVG(unifiedSnapshot()) },
	"live_page":      func() string { return LivePage(liveState()) },
	"svg_net":        func() string { return NetSVG(webNet()) },
	"live_page_net":  func() string { return LivePage(liveNetState(1)) },
	"live_page_net2": func() string { return LivePage(liveNetState(2)) },
	// Lesson 7's two web servers: no stack, no cgroup, the map beside.
	"live_page_net2_map": func() string {
		s := liveNetState(2)
		s.Boxes[0].Stack, s.Boxes[0].Cgroup = nil, nil
		return LivePage(s)
	},
}

// liveNetState is the page after lesson 7's two web servers, with n of
// its boxes drawn: the map under the one box's stack, or below two.
func liveNetState(n int) LiveState {
	s := liveState()
	s.Boxes = s.Boxes[:n]
	m := webNet()
	s.Net = &m
	return s
}

func TestLiveDrawingsMatchGoldenFiles(t *testing.T) {
	for name, draw := range drawings {
		got := draw()
		if again := draw(); again != got {
			t.Errorf("%s differs between two drawings of the same snapshot", name)
		}
		checkPanelGolden(t, name+".golden", got)
	}
}

// TestLiveDrawingsAreWellFormedXML parses every drawing: a browser shows
// nothing of an SVG with one unbalanced tag or unescaped '<' in a path.
func TestLiveDrawingsAreWellFormedXML(t *testing.T) {
	odd := webStack(false)
	odd.Changes = append(odd.Changes, rootfs.Change{Path: "/tmp/<script>&\"x\"", Kind: rootfs.Created})
	all := map[string]string{"odd paths": StackSVG(odd)}
	for name, draw := range drawings {
		all[name] = draw()
	}
	for name, doc := range all {
		dec := xml.NewDecoder(strings.NewReader("<root>" + doc + "</root>"))
		dec.Strict = true
		for {
			_, err := dec.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("%s is not well-formed: %v", name, err)
				break
			}
		}
		if strings.Contains(doc, "<script") {
			t.Errorf("%s lets a path's markup through", name)
		}
	}
}

// TestNamespaceSVGPutsEachNamespaceInTheFrameOfWhoOwnsIt checks the
// drawing against the table: the box's own inodes in the box's frame,
// pid in PID 1's, the rest the host's, and the step's new ones marked.
func TestNamespaceSVGPutsEachNamespaceInTheFrameOfWhoOwnsIt(t *testing.T) {
	svg := NamespaceSVG(webNamespaces(), webBefore(), webProcesses().Children[0])
	chip := regexp.MustCompile(`<g class="(ns[^"]*)" data-type="([a-z]+)" data-types="([a-z_ ]+)" data-inode="(\d+)" data-owner="(\w+)">`)
	got := map[string]string{}
	changed := map[string]bool{}
	covers := map[string]string{}
	for _, m := range chip.FindAllStringSubmatch(svg, -1) {
		got[m[2]] = m[5] + " " + m[4]
		changed[m[2]] = strings.Contains(m[1], "changed")
		covers[m[2]] = m[3]
	}
	// One inode, one chip: PID 1's pid is its pid_for_children; the
	// host's time is every process's time_for_children.
	if covers["pid"] != "pid pid_for_children" || covers["time"] != "time time_for_children" {
		t.Errorf("pid's chip covers %q and time's %q: a namespace shared by two types is one chip with both", covers["pid"], covers["time"])
	}
	if n := len(chip.FindAllString(svg, -1)); n != 8 {
		t.Errorf("%d chips for the 8 namespaces of the table", n)
	}
	want := map[string]string{
		"uts": "boxns 4026532279", "ipc": "boxns 4026532280", "mnt": "boxns 4026532282", "net": "boxns 4026532283",
		"pid": "initns 4026532284", "cgroup": "host 4026531835", "time": "host 4026531834", "user": "host 4026531837",
	}
	for typ, w := range want {
		if got[typ] != w {
			t.Errorf("%s: drawn as %q, want %q", typ, got[typ], w)
		}
	}
	for _, typ := range []string{"ipc", "mnt", "net", "pid"} {
		if !changed[typ] {
			t.Errorf("%s is new since the step before but not marked", typ)
		}
	}
	if changed["uts"] {
		t.Error("uts was the box's own before the step, yet is marked as made by it")
	}
	for _, typ := range []string{"cgroup", "time", "user"} {
		if changed[typ] {
			t.Errorf("the host's %s is marked as made by the step", typ)
		}
	}
	for _, pid := range []string{`data-pid="4251" data-boxpid="1"`, `data-pid="4260" data-boxpid="2"`, `data-pid="4263" data-boxpid="3"`} {
		if !strings.Contains(svg, pid) {
			t.Errorf("process %s is not drawn", pid)
		}
	}
}

// TestCgroupSVGFillsBarsAgainstLimits reads the bars' own attributes.
func TestCgroupSVGFillsBarsAgainstLimits(t *testing.T) {
	svg := CgroupSVG(hybridSnapshot())
	for _, want := range []string{
		`<g class="bar full" data-resource="pids" data-current="20" data-max="20">`,
		`<g class="bar high" data-resource="memory" data-current="33550336" data-max="33554432">`,
		`<g class="bar nolimit" data-resource="pids" data-current="1" data-max="max">`,
		`forks refused 37`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("cgroup drawing lacks %s", want)
		}
	}
	if !strings.Contains(svg, `<g class="cgroup own" data-cgroup="web-0123456789ab">`) {
		t.Error("the box's own cgroup is not marked")
	}
}

func BenchmarkLivePage(b *testing.B) {
	s := liveState()
	for b.Loop() {
		LivePage(s)
	}
}

// TestNamespaceSVGDrawsPidForChildrenAloneBeforePID1 draws the table
// after `unshare pid` with no PID 1 yet: the box process is still in the
// host's pid namespace, its children will be in the new one, so the new
// inode is a chip of its own, pid_for_children, in the box's frame.
func TestNamespaceSVGDrawsPidForChildrenAloneBeforePID1(t *testing.T) {
	before := webBefore()
	now := webBefore()
	for i, r := range now.Rows {
		if r.Type == "pid_for_children" {
			now.Rows[i].Box = 4026532284
		}
	}
	svg := NamespaceSVG(*now, before, nil)
	for _, want := range []string{
		`<g class="ns" data-type="pid" data-types="pid" data-inode="4026531836" data-owner="host">`,
		`<g class="ns changed" data-type="pid_for_children" data-types="pid_for_children" data-inode="4026532284" data-owner="boxns">`,
		`<g class="ns" data-type="time" data-types="time time_for_children" data-inode="4026531834" data-owner="host">`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("the drawing lacks %s:\n%s", want, svg)
		}
	}
}

// TestNetSVGWiresEachVethToItsBox reads the map's own attributes: the
// bridge with its gateway, each port on it wired to the box whose eth0
// is the other end, the box's address, counters and default route.
func TestNetSVGWiresEachVethToItsBox(t *testing.T) {
	svg := NetSVG(webNet())
	for _, want := range []string{
		`<g class="link bridge" data-ns="host" data-name="stepbox0" data-kind="bridge" data-up="true" data-addrs="172.20.0.1/24" data-rx="3" data-tx="3"`,
		`<g class="link veth port" data-ns="host" data-name="veth62604c2d" data-kind="veth" data-up="true" data-addrs="" data-rx="3" data-tx="7" data-master="stepbox0" data-peer-box="web1">`,
		`<g class="link veth port" data-ns="host" data-name="veth059177b9" data-kind="veth" data-up="true" data-addrs="" data-rx="3" data-tx="4" data-master="stepbox0" data-peer-box="web2">`,
		`<g class="link veth" data-ns="web2" data-name="eth0" data-kind="veth" data-up="true" data-addrs="172.20.0.3/24" data-rx="4" data-tx="3"`,
		`data-ns="web1" data-dst="default" data-gw="172.20.0.1" data-dev="eth0"`,
		`<g class="published" data-host-port="8080" data-proto="tcp" data-box="web1" data-addr="172.20.0.2" data-box-port="80">`,
		`<g class="nat" data-bridge="stepbox0" data-packets="0">`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("the map lacks %s", want)
		}
	}
	if strings.Contains(svg, `data-name="lo"`) {
		t.Error("the map draws lo, which every namespace has")
	}
	if page := LivePage(liveState()); strings.Contains(page, `id="net"`) {
		t.Error("a session with no network step draws a network map")
	}
}

// TestNetSVGSaysWhatEachNATRuleCounts: a bridge's NAT rules are the
// masquerade out and the forwarding both ways, each named for what it
// counts, never three lines that read the same.
func TestNetSVGSaysWhatEachNATRuleCounts(t *testing.T) {
	m := webNet()
	m.Rules = append(m.Rules,
		network.Rule{Chain: "forward", Packets: 5, Text: `iifname "stepbox0" counter packets 5 bytes 300 accept`, Comment: "stepbox nat stepbox0"},
		network.Rule{Chain: "forward", Packets: 4, Text: `oifname "stepbox0" ct state established,related counter packets 4 bytes 240 accept`, Comment: "stepbox nat stepbox0"})
	svg := NetSVG(m)
	for _, want := range []string{"masquerade out of stepbox0: 0 packets", "forwarded from stepbox0: 5 packets", "forwarded back to stepbox0: 4 packets"} {
		if !strings.Contains(svg, want) {
			t.Errorf("the network map has no %q:\n%s", want, svg)
		}
	}
}
