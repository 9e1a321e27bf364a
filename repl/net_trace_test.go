package repl

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `net trace` marks the box's packets with `meta nftrace set 1` from
// chains of stepbox's own table while the command runs, and reads the
// kernel's NFT_MSG_TRACE events. A ping to the outside shows the forward
// rule of `net nat` and its masquerade, and the reply on its way back; a
// ping between two boxes on the bridge meets the ip hooks only with
// br_netfilter, and the trace shows them or says so. The trace chains go
// when the command ends, and teardown leaves the host side as it was.
func TestNetTraceShowsTheRulesTheBoxsPacketsMet(t *testing.T) {
	sh, out, host := netShell(t)
	outside := newTestNetNS(t)
	host.sh(t, fmt.Sprintf("ip link add up0 type veth peer name down0 netns %d", outside.PID)+
		" && ip addr add 198.51.100.1/24 dev up0 && ip link set up0 up")
	outside.sh(t, "ip addr add 198.51.100.2/24 dev down0 && ip link set down0 up")
	before := host.state(t)
	run(t, sh, out, "new a", "unshare net", "net bridge", "net veth", "net addr", "net route",
		"new b", "unshare net", "net veth", "net addr", "net route", "net nat", "explain on")
	out.Reset()
	run(t, sh, out, "net trace busybox ping -c1 -W2 198.51.100.2")
	for _, want := range []string{
		"nft add chain ip stepbox trace_from_box '{ type filter hook prerouting priority raw; policy accept; }'",
		"nft add rule ip stepbox trace_from_box 'ip saddr 172.20.0.3 counter meta nftrace set 1 comment \"stepbox trace b\"'",
		"nft add chain ip stepbox trace_to_box '{ type filter hook prerouting priority dstnat + 1; policy accept; }'",
		"packet 1: icmp echo-request 172.20.0.3 → 198.51.100.2",
		`→ ip stepbox forward in stepbox0 out up0: rule "iifname \"stepbox0\" counter accept" (handle `,
		`→ ip stepbox postrouting in stepbox0 out up0: rule "ip saddr 172.20.0.0/24 oifname != \"stepbox0\" counter masquerade" (handle `,
		// The reply, marked once conntrack has undone the masquerade.
		"packet 2: icmp echo-reply 198.51.100.2 → 172.20.0.3",
		`→ ip stepbox forward in up0 out stepbox0: rule "oifname \"stepbox0\" ct state established,related counter accept" (handle `,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("net trace lacks %q:\n%s", want, out)
		}
	}

	out.Reset()
	run(t, sh, out, "net trace busybox ping -c1 -W2 172.20.0.2")
	if v := strings.TrimSpace(host.sh(t, "sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null || true")); v != "1" {
		if !strings.Contains(out.String(), "packets between boxes on one bridge are switched, not routed") {
			t.Errorf("without br_netfilter (bridge-nf-call-iptables %q) the trace does not say why it saw nothing:\n%s", v, out)
		}
	} else {
		for _, want := range []string{
			"packet 1: icmp echo-request 172.20.0.3 → 172.20.0.2",
			`→ ip stepbox forward in stepbox0 out stepbox0: rule "iifname \"stepbox0\" counter accept" (handle `,
			"→ ip stepbox postrouting: no rule decided, policy accept",
			"packet 2: icmp echo-reply 172.20.0.2 → 172.20.0.3",
		} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("net trace lacks %q:\n%s", want, out)
			}
		}
		// A TCP request: many packets of one flow, each followed on its
		// own (the kernel may give them the same trace ID), each
		// forwarded once.
		run(t, sh, out, "use a", "exec busybox httpd -p 80 -h /etc", "use b")
		out.Reset()
		run(t, sh, out, "net trace timeout 5 busybox wget -q -O /dev/null http://172.20.0.2/os-release")
		if n := len(regexp.MustCompile(`(?m)^\s+packet \d+: tcp `).FindAllString(out.String(), -1)); n < 4 {
			t.Fatalf("net trace followed %d TCP packets of a wget, want the handshake and more:\n%s", n, out)
		}
		for _, block := range strings.Split(out.String(), "packet ")[1:] {
			if n := strings.Count(block, "ip stepbox forward "); n != 1 {
				t.Errorf("a traced packet met stepbox's forward chain %d times, want once:\npacket %s", n, block)
			}
		}
	}
	if o := host.sh(t, "nft list table ip stepbox"); strings.Contains(o, "trace_") || strings.Contains(o, "nftrace") {
		t.Fatalf("the trace chains outlived the traced command:\n%s", o)
	}
	// Only the box's packets are followed: while box a sleeps under the
	// trace, the host side pings box b, and none of that is shown.
	host.sh(t, "busybox ping -c 8 -i 0.2 172.20.0.3 >/dev/null 2>&1 &")
	out.Reset()
	run(t, sh, out, "use a", "net trace sleep 1")
	if strings.Contains(out.String(), "packet 1:") || !strings.Contains(out.String(), "no packet from or to 172.20.0.2") {
		t.Errorf("the trace of box a followed packets that were not box a's:\n%s", out)
	}
	if n := nftCounter(t, host, "nftrace"); n != 0 {
		t.Errorf("trace rules are left in stepbox's table")
	}
	// conntrack's entries of the boxes' connections go with the bridge:
	// they would wait to expire otherwise (5 days for an established TCP
	// connection).
	flows := "grep -c 172.20.0 /proc/net/nf_conntrack || true"
	if n := strings.TrimSpace(host.sh(t, flows)); n == "0" {
		t.Fatalf("conntrack tracks no connection of the boxes on the host side:\n%s", host.sh(t, "cat /proc/net/nf_conntrack"))
	}
	if err := sh.Session.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if n := strings.TrimSpace(host.sh(t, flows)); n != "0" {
		t.Errorf("teardown left %s conntrack entries of the bridge's subnet:\n%s", n, host.sh(t, "cat /proc/net/nf_conntrack"))
	}
	if after := host.state(t); after != before {
		t.Fatalf("teardown left the host side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// A session killed with SIGKILL while a traced command runs leaves the
// trace chains in stepbox's table; `stepbox cleanup` removes them from
// the box's ledger, with the rest of the network.
func TestCleanupAfterKill9DuringNetTraceRemovesTheTraceChains(t *testing.T) {
	host, before, dir := binaryNetHost(t)
	cmd := exec.Command(stepboxBinary(t), "--state-dir", dir, "run", "-")
	cmd.Stdin = strings.NewReader("new a\nunshare net\nnet bridge\nnet veth\nnet addr\nnet route\nnet trace sleep 30\n")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	childStepbox(t, cmd, dir, syscall.SIGTERM)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if o, err := exec.Command("nsenter", "--net="+host.Path, "nft", "list", "chain", "ip", "stepbox", "trace_from_box").CombinedOutput(); err == nil && strings.Contains(string(o), "nftrace set 1") {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the trace chain never appeared on the host side")
		}
	}
	kill9AndCleanup(t, cmd, dir, host, before)
}

// From box b to box a the trace lists the hops along the wire, says why
// a forward chain sees switched packets, shows only the connections the
// command made, and keeps its own nft set-up for `explain on`.
func TestNetTraceFollowsTheWireAndShowsOnlyItsOwnConnections(t *testing.T) {
	sh, out, host := netShell(t)
	run(t, sh, out, "new a", "unshare net", "net bridge", "net veth", "net addr", "net route", "exec busybox httpd -p 80 -h /etc",
		"new b", "unshare net", "net veth", "net addr", "net route", "net nat")
	// A connection of the host side's to box a, before the trace.
	host.sh(t, "timeout 5 busybox wget -q -O /dev/null http://172.20.0.2/os-release")
	if o := host.sh(t, "cat /proc/net/nf_conntrack"); !strings.Contains(o, "dst=172.20.0.2 sport=") {
		t.Fatalf("conntrack has no entry of the host side's request to box a:\n%s", o)
	}
	m, err := sh.Session.NetMap()
	if err != nil {
		t.Fatal(err)
	}
	vethOf := map[string]string{}
	for end, box := range m.Owners {
		vethOf[box] = end
	}
	out.Reset()
	run(t, sh, out, "net trace busybox ping -c1 -W2 172.20.0.2")
	text := out.String()
	hops := text[strings.Index(text, "interfaces that counted"):strings.Index(text, "stepbox's nft rules")]
	path := regexp.MustCompile(`(?s)b\s+eth0 .*→ host\s+` + vethOf["b"] + ` .*→ host\s+stepbox0 .*→ host\s+` + vethOf["a"] + ` .*→ a\s+eth0 `)
	if !path.MatchString(hops) {
		t.Errorf("the hops do not follow b eth0 → %s → stepbox0 → %s → a eth0:\n%s", vethOf["b"], vethOf["a"], hops)
	}
	v := strings.TrimSpace(host.sh(t, "sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null || true"))
	if flat := strings.Join(strings.Fields(text), " "); v == "1" && !strings.Contains(flat, "only because br_netfilter is loaded and net.bridge.bridge-nf-call-iptables is 1") {
		t.Errorf("with bridge-nf-call-iptables 1 the trace does not say why the forward chain saw switched packets:\n%s", text)
	}
	if strings.Contains(text, "172.20.0.2:80") || !strings.Contains(text, "older entry of these addresses, from before the trace") {
		t.Errorf("the trace shows the host side's earlier connection as its own, or does not say it left it out:\n%s", text)
	}
	if strings.Contains(text, "$ nft ") {
		t.Errorf("with explain off the trace prints its own nft set-up:\n%s", text)
	}
}
