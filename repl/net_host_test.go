package repl

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"stepbox/primitives/network"
)

// hostNetState is what the real host side must have byte-identical after
// a session: its links, addresses, routes, nft ruleset, and the sysctls
// the net steps may change.
func hostNetState(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", "ip -o link; ip -o addr; ip route show table all; nft list ruleset; "+
		"sysctl net.ipv4.ip_forward; sysctl -a 2>/dev/null | grep route_localnet").CombinedOutput()
	if err != nil {
		t.Fatalf("reading the host's network: %v\n%s", err, out)
	}
	return string(out)
}

// netStep types a line at the prompt and waits for the step's own words
// and the prompt after it.
func (p *tmuxPane) netStep(line, prompt, want string) string {
	p.t.Helper()
	p.mark()
	p.line(line)
	s := p.waitFor(want, "\n"+prompt)
	if strings.Contains(s, "✗") || strings.Contains(s, "error") {
		p.t.Fatalf("%s failed:\n%s", line, s)
	}
	return s
}

var ipv4CIDR = regexp.MustCompile(`(\d+\.\d+\.\d+\.\d+)/\d+`)

// boxAddr is the address the map after `net addr` shows on the box's
// eth0 (its lo has 127.0.0.1).
func boxAddr(screen string) string {
	for _, m := range ipv4CIDR.FindAllStringSubmatch(screen, -1) {
		if !strings.HasPrefix(m[1], "127.") {
			return m[1]
		}
	}
	return ""
}

// The one test on the machine's real host side (no STEPBOX_NET_HOST_NS),
// typed in a real terminal: two boxes, the bridge, their veths,
// addresses and routes, a ping from one to the other, then `exit`. The
// host's links, addresses, routes, nft ruleset and sysctls are
// byte-identical before and after. No NAT and no published port: the
// only traffic is between the two boxes, and `net trace` adds stepbox's
// table only for the trace chains, which mark nothing but box b's packets.
//
// It is part of `make test` (and so of CI, as root on a fresh machine):
// it takes a few seconds, changes nothing but the links, addresses and
// routes it makes and stepbox's own nft table (no sysctl), and a fresh
// machine's real host side is where a leak would show. `make test-container`
// shares the host's network namespace and runs it the same way.
func TestNetOnTheRealHostSideLeavesTheHostAsItWas(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"ip", "nft", "sysctl", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: .ci/deps.sh installs it", tool)
		}
	}
	t.Setenv(network.HostNSEnv, "")
	hostUnchanged(t)
	before := hostNetState(t)
	if regexp.MustCompile(`hook forward priority [^;]*; policy drop;`).MatchString(before) {
		t.Skip("the host drops forwarded packets (Docker's FORWARD policy DROP), and br_netfilter sends packets between boxes on one bridge through it: they cannot ping each other here (`net bridge` says so)")
	}
	p := newTmuxPane(t)
	p.mark()
	// Whatever happens, the host is compared only once stepbox has torn
	// down: the pane's cleanup closes its terminal and waits for it.
	dir := t.TempDir()
	p.stepbox(dir, stepboxBinary(t)+" --state-dir "+dir+"; echo STEPBOX-EXIT=$?")
	p.waitFor("stepbox ▸")
	p.netStep("new a", "a[] ▸", "box a")
	p.netStep("unshare net", "a[net] ▸", "new net namespace")
	p.netStep("net bridge", "a[net] ▸", "bridge made on the host side")
	p.netStep("net veth", "a[net] ▸", "box a has eth0")
	addr := boxAddr(p.netStep("net addr", "a[net] ▸", "box a has an address"))
	if addr == "" {
		t.Fatalf("net addr did not show box a's address:\n%s", p.screen())
	}
	p.netStep("net route", "a[net] ▸", "box a has a default route")
	p.netStep("new b", "b[] ▸", "box b")
	p.netStep("unshare net", "b[net] ▸", "new net namespace")
	p.netStep("net veth", "b[net] ▸", "box b has eth0")
	p.netStep("net addr", "b[net] ▸", "box b has an address")
	p.netStep("net route", "b[net] ▸", "box b has a default route")
	if o, _ := exec.Command("ip", "-o", "link", "show", "master", "stepbox0").CombinedOutput(); strings.Count(string(o), "veth") != 2 {
		t.Fatalf("the host's bridge stepbox0 does not hold two veths:\n%s", o)
	}
	p.netStep("exec busybox ping -c1 -W2 "+addr, "b[net] ▸", "1 packets received")
	// The same ping traced: stepbox's table and its trace chains come and
	// go on the real host side too.
	want := "packet 1: icmp echo-request"
	if v, _ := os.ReadFile("/proc/sys/net/bridge/bridge-nf-call-iptables"); strings.TrimSpace(string(v)) != "1" {
		want = "packets between boxes on one bridge are switched, not routed"
	}
	p.netStep("net trace busybox ping -c1 -W2 "+addr, "b[net] ▸", want)
	p.mark()
	p.line("exit")
	if s := p.waitFor("STEPBOX-EXIT="); !strings.Contains(s, "STEPBOX-EXIT=0") {
		t.Fatalf("stepbox did not exit cleanly:\n%s", s)
	}
	subnet := addr[:strings.LastIndex(addr, ".")+1]
	if b, err := os.ReadFile("/proc/net/nf_conntrack"); err == nil && strings.Contains(string(b), "="+subnet) {
		t.Errorf("conntrack still tracks connections of the boxes' subnet %s0:\n%s", subnet, b)
	}
	if after := hostNetState(t); after != before {
		t.Fatalf("the session left the host's network changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
