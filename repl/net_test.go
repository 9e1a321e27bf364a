package repl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"stepbox/primitives"
	"stepbox/primitives/network"
	"stepbox/viz"
)

// testNetNS is a network namespace the test made, held by a sleeping
// process: the "host side" or the "outside" of a network test. Nothing
// of the machine's own network is touched.
type testNetNS struct {
	cmd  *exec.Cmd
	PID  int
	Path string
}

func newTestNetNS(t testing.TB) *testNetNS {
	t.Helper()
	cmd := exec.Command("unshare", "--net", "sleep", "3600")
	if err := cmd.Start(); err != nil {
		t.Fatalf("unshare --net: %v", err)
	}
	n := &testNetNS{cmd: cmd, PID: cmd.Process.Pid, Path: fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid)}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// The holder is in its namespace once unshare has exec'd sleep.
	for i := 0; i < 200; i++ {
		self, _ := os.Readlink("/proc/self/ns/net")
		if l, err := os.Readlink(n.Path); err == nil && l != self {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// No IPv6: its duplicate address detection would change the links'
	// state while the test compares it.
	n.sh(t, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 && ip link set lo up")
	return n
}

// sh runs a shell command inside the namespace.
func (n *testNetNS) sh(t testing.TB, script string) string {
	t.Helper()
	out, err := exec.Command("nsenter", "--net="+n.Path, "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v\n%s", n.Path, script, err, out)
	}
	return string(out)
}

// state is what teardown must leave byte-identical: links, addresses,
// routes, the nft ruleset and the sysctls stepbox may change.
// linkFlux is what the kernel changes by itself a moment after a link is
// made or plugged in: the carrier (NO-CARRIER, LOWER_UP, operstate) and
// the linkdown mark of its routes. It is left out of the comparison.
var linkFlux = regexp.MustCompile(`NO-CARRIER,|,LOWER_UP|,M-DOWN| state [A-Z]+| linkdown`)

func (n *testNetNS) state(t testing.TB) string {
	t.Helper()
	return linkFlux.ReplaceAllString(n.sh(t, "ip -o link; ip -o addr; ip route show table all; nft list ruleset; sysctl net.ipv4.ip_forward net.ipv4.conf.all.route_localnet"), "")
}

// netShell is an in-process session whose host side is a namespace the
// test made (STEPBOX_NET_HOST_NS).
func netShell(t *testing.T) (*Shell, *bytes.Buffer, *testNetNS) {
	t.Helper()
	needRoot(t)
	for _, tool := range []string{"unshare", "nsenter", "ip", "nft", "busybox"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: .ci/deps.sh installs it", tool)
		}
	}
	hostUnchanged(t)
	host := newTestNetNS(t)
	t.Setenv(network.HostNSEnv, host.Path)
	s, err := primitives.OpenSession(primitives.Dirs{Run: searchableTempDir(t), Lib: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	sh := NewShell(s, &out, &out, viz.NewTheme("plain"), 200)
	t.Cleanup(func() { s.Close() })
	return sh, &out, host
}

// nftCounter sums the packets counted by the rules of stepbox's table
// whose text contains word, read with Debian's nft.
func nftCounter(t *testing.T, host *testNetNS, word string) uint64 {
	t.Helper()
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Chain string           `json:"chain"`
				Expr  []map[string]any `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(host.sh(t, "nft -j list table ip stepbox")), &doc); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, it := range doc.Nftables {
		if it.Rule == nil {
			continue
		}
		b, _ := json.Marshal(it.Rule.Expr)
		if !strings.Contains(string(b), word) {
			continue
		}
		for _, e := range it.Rule.Expr {
			if c, ok := e["counter"].(map[string]any); ok {
				n += uint64(c["packets"].(float64))
			}
		}
	}
	return n
}

func TestBoxesOnABridgeReachEachOtherTheOutsideAndAPublishedPort(t *testing.T) {
	sh, out, host := netShell(t)
	// The outside: a namespace beyond the host side, which has no route
	// back to the boxes' subnet, so only masquerade gets replies home.
	outside := newTestNetNS(t)
	host.sh(t, fmt.Sprintf("ip link add up0 type veth peer name down0 netns %d", outside.PID)+
		" && ip addr add 198.51.100.1/24 dev up0 && ip link set up0 up")
	outside.sh(t, "ip addr add 198.51.100.2/24 dev down0 && ip link set down0 up")
	before := host.state(t)

	// The article's two web servers, both on port 80.
	www, www2 := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(www, "index.html"), []byte("hello from box a\n"), 0o644)
	os.WriteFile(filepath.Join(www2, "index.html"), []byte("hello from box b\n"), 0o644)
	run(t, sh, out, "new a", "unshare net", "net bridge", "net veth", "net addr", "net route",
		"exec busybox httpd -p 80 -h "+www,
		"new b", "unshare net", "net veth", "net addr", "net route",
		"exec busybox httpd -p 80 -h "+www2)
	for addr, want := range map[string]string{"172.20.0.2": "hello from box a", "172.20.0.3": "hello from box b"} {
		if o := host.sh(t, "timeout 5 busybox wget -q -O - http://"+addr+"/"); !strings.Contains(o, want) {
			t.Fatalf("the host side could not fetch %s's page:\n%s", addr, o)
		}
	}

	// The kernel's view, read with iproute2.
	// Up as the step set it (IFF_UP); its operstate follows its ports a
	// moment later.
	if o := host.sh(t, "ip -d -o link show stepbox0"); !strings.Contains(o, " bridge ") || !regexp.MustCompile(`[<,]UP[,>]`).MatchString(o) {
		t.Fatalf("no bridge stepbox0 up on the host side:\n%s", o)
	}
	if o := host.sh(t, "ip -o addr show dev stepbox0"); !strings.Contains(o, "172.20.0.1/24") {
		t.Fatalf("the bridge has no gateway address:\n%s", o)
	}
	if o := host.sh(t, "ip -o link show master stepbox0"); strings.Count(o, "veth") != 2 {
		t.Fatalf("the bridge does not hold two veths:\n%s", o)
	}
	run(t, sh, out, "use a")
	aNS := fmt.Sprintf("/proc/%d/ns/net", sh.Current().PID())
	if o, _ := exec.Command("nsenter", "--net="+aNS, "ip", "-o", "addr", "show", "dev", "eth0").CombinedOutput(); !strings.Contains(string(o), "172.20.0.2/24") {
		t.Fatalf("box a's eth0 has no 172.20.0.2/24:\n%s", o)
	}
	if o, _ := exec.Command("nsenter", "--net="+aNS, "ip", "route", "show", "default").CombinedOutput(); !strings.Contains(string(o), "via 172.20.0.1 dev eth0") {
		t.Fatalf("box a has no default route via the bridge:\n%s", o)
	}

	// Box to box: ping and a TCP request.
	run(t, sh, out, "use b", "exec busybox ping -c1 -W2 172.20.0.2")
	out.Reset()
	run(t, sh, out, "exec timeout 5 busybox wget -q -O - http://172.20.0.2/")
	if !strings.Contains(out.String(), "hello from box a") {
		t.Fatalf("box b could not fetch box a's page:\n%s", out)
	}

	// The outside answers only once masquerade rewrites the source.
	if err := sh.Execute(context.Background(), "exec busybox ping -c1 -W1 198.51.100.2"); err == nil {
		t.Fatal("box b reached the outside before `net nat`: the test's outside must not route back to the boxes")
	}
	run(t, sh, out, "net nat", "exec busybox ping -c1 -W2 198.51.100.2")
	if n := nftCounter(t, host, `"masquerade":null`); n == 0 {
		t.Fatalf("the masquerade rule counted no packet:\n%s", host.sh(t, "nft list table ip stepbox"))
	}
	if v := strings.TrimSpace(host.sh(t, "sysctl -n net.ipv4.ip_forward")); v != "1" {
		t.Fatalf("ip_forward is %s on the host side after net nat", v)
	}

	// A published port: from the host side's 127.0.0.1, from another box
	// through the gateway (hairpin), and from the outside.
	run(t, sh, out, "use a", "net publish 8080:80")
	if o := host.sh(t, "timeout 5 busybox wget -q -O - http://127.0.0.1:8080/"); !strings.Contains(o, "hello from box a") {
		t.Fatalf("127.0.0.1:8080 on the host side did not reach box a:\n%s", o)
	}
	out.Reset()
	run(t, sh, out, "use b", "exec timeout 5 busybox wget -q -O - http://172.20.0.1:8080/")
	if !strings.Contains(out.String(), "hello from box a") {
		t.Fatalf("box b could not reach box a through the published port:\n%s", out)
	}
	if o := outside.sh(t, "timeout 5 busybox wget -q -O - http://198.51.100.1:8080/"); !strings.Contains(o, "hello from box a") {
		t.Fatalf("the outside could not reach the published port:\n%s", o)
	}
	if n := nftCounter(t, host, `"dnat"`); n < 3 {
		t.Fatalf("the DNAT rules counted %d connections, want 3:\n%s", n, host.sh(t, "nft list table ip stepbox"))
	}

	// One request followed hop by hop: box b's eth0, the bridge, box a's
	// eth0; the DNAT rule that counted it; conntrack's DNAT and masquerade.
	out.Reset()
	run(t, sh, out, "use b", "net trace timeout 5 busybox wget -q -O - http://172.20.0.1:8080/")
	for _, want := range []string{"box b: ip route get 172.20.0.1 → dev eth0 src 172.20.0.3", "  b            eth0", "→ a            eth0",
		"dnat to 172.20.0.2:80", "DNAT to 172.20.0.2:80 · source NAT (masquerade) to 172.20.0.1", "hello from box a"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("net trace lacks %q:\n%s", want, out)
		}
	}

	// The map shows what the kernel has.
	out.Reset()
	run(t, sh, out, "net")
	for _, want := range []string{"bridge stepbox0: subnet 172.20.0.0/24", "↔ box a eth0", "↔ box b eth0", "dnat to 172.20.0.2:80", "host :8080/tcp → box a 172.20.0.2:80"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the map lacks %q:\n%s", want, out)
		}
	}

	if err := sh.Session.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if after := host.state(t); after != before {
		t.Fatalf("teardown left the host side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// Bad input: a clear error naming the command and what is allowed, and
// the host side and the box exactly as they were.
func TestBadNetInputIsRefusedAndChangesNothing(t *testing.T) {
	sh, out, host := netShell(t)
	host.sh(t, "ip link add taken0 type veth peer name taken1 && ip link set taken0 up && ip link set taken1 up")
	run(t, sh, out, "new a")
	assertAllRefused(t, sh, host, []refusal{
		{"net veth", "run `unshare net` first"},
		{"net bridge taken0", "exists on the host side and is not stepbox's"},
		{"net bridge br0 10.0.0.0/33", "not an IPv4 subnet"},
		{"net bridge br0 10.0.0.1/24", "host bits set"},
		{"net bridge br0 10.0.0.0/31", "/8 to /30"},
		{"net bridge br0 127.0.0.0/24", "net bridge br0 127.0.0.0/24: subnet 127.0.0.0/24 overlaps 127.0.0.0/8 (loopback)"},
		{"net bridge br0 224.0.0.0/24", "multicast"},
		{"net bridge br0 255.255.255.0/24", "class E"},
		{"net bridge br.0", "is not allowed"},
		{"net bridge averyveryverylongname", "is not allowed"},
	})
	run(t, sh, out, "unshare net")
	assertRefused(t, sh, host, "net veth", "there is no bridge yet")
	run(t, sh, out, "net bridge br0 10.9.0.0/24")
	host.sh(t, "ip addr add 10.8.0.1/16 dev taken0")
	assertRefused(t, sh, host, "net bridge br1 10.8.5.0/24", "overlaps the host side's route 10.8.0.0/16 on taken0")
	assertRefused(t, sh, host, "net addr", "run `net veth` first")
	run(t, sh, out, "net veth")
	assertAllRefused(t, sh, host, []refusal{
		{"net veth", "has its veth pair already"},
		{"net addr 10.7.0.2", "must be in the bridge's subnet 10.9.0.0/24"},
		{"net addr 10.9.0.1", "taken by the bridge br0"},
		{"net addr 10.9.0.255", "network or broadcast"},
		{"net addr 10.9.0.2/16", "with prefix /24"},
		{"net addr nonsense", "not an IPv4 address"},
		{"net route", "run `net addr` first"},
		{"net publish 8080:80", "no address"},
	})
	run(t, sh, out, "net addr 10.9.0.7", "new b", "unshare net", "net veth")
	assertRefused(t, sh, host, "net addr 10.9.0.7", "taken by box a")
	run(t, sh, out, "use a")
	assertAllRefused(t, sh, host, []refusal{
		{"net route 10.5.0.1", "must be on the box's subnet"},
		{"net publish 80", "HOSTPORT:BOXPORT"},
		{"net publish 0:80", "ports 1 to 65535"},
		{"net publish 8080:70000", "ports 1 to 65535"},
		{"net publish 8080:80/sctp", "tcp or udp"},
	})
	// A port some program of the host side is bound to.
	busy := exec.Command("nsenter", "--net="+host.Path, "busybox", "nc", "-l", "-p", "9090")
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { busy.Process.Kill(); busy.Wait() }()
	for i := 0; i < 200 && !strings.Contains(host.sh(t, "cat /proc/net/tcp /proc/net/tcp6"), ":2382 "); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	assertRefused(t, sh, host, "net publish 9090:80", "bound to port 9090/tcp already")
	run(t, sh, out, "net publish 8080:80")
	run(t, sh, out, "use b", "net addr")
	assertRefused(t, sh, host, "net publish 8080:80", "published already, to box a")
}

// assertRefused runs line, wants an error containing want, and the host
// side unchanged.
func assertRefused(t *testing.T, sh *Shell, host *testNetNS, line, want string) {
	t.Helper()
	assertAllRefused(t, sh, host, []refusal{{line, want}})
}

type refusal struct{ line, want string }

// assertAllRefused runs each line, wants each refused with an error
// containing its want, and the host side as it was before the first: read
// once before and once after the lines (the VM test runs under emulation,
// where each read costs seconds).
func assertAllRefused(t *testing.T, sh *Shell, host *testNetNS, cases []refusal) {
	t.Helper()
	before := host.state(t)
	var lines []string
	for _, c := range cases {
		err := sh.Execute(context.Background(), c.line)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one saying %q", c.line, err, c.want)
		}
		lines = append(lines, c.line)
	}
	if after := host.state(t); after != before {
		t.Errorf("refused lines changed the host side (%s):\nbefore:\n%s\nafter:\n%s", strings.Join(lines, "; "), before, after)
	}
}

// A session killed with SIGKILL leaves its bridge, veths, nft table and
// sysctls behind; `stepbox cleanup` removes them and writes the sysctls
// back, from the ledgers alone.
func TestCleanupAfterKill9RemovesTheNetwork(t *testing.T) {
	host, before, dir := binaryNetHost(t)
	cmd, w := startSession(t, dir, "new a\nunshare net\nnet bridge\nnet veth\nnet addr\nnet route\nnet nat\nnet publish 8080:80\n")
	defer w.Close()
	if o := host.sh(t, "ip -o link; nft list tables; sysctl -n net.ipv4.ip_forward"); !strings.Contains(o, "stepbox0") || !strings.Contains(o, "table ip stepbox") || !strings.HasSuffix(strings.TrimSpace(o), "1") {
		t.Fatalf("the session did not build its network:\n%s", o)
	}
	kill9AndCleanup(t, cmd, dir, host, before)
}

// kill9AndCleanup kills the session with SIGKILL, runs `stepbox cleanup`
// on its state dir and checks that the host side is as it was before.
func kill9AndCleanup(t *testing.T, cmd *exec.Cmd, dir string, host *testNetNS, before string) {
	t.Helper()
	cmd.Process.Kill()
	cmd.Wait()
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	assertNoSessions(t, dir)
	if after := host.state(t); after != before {
		t.Fatalf("cleanup left the host side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// `explain net …` plans what the step then does, request for request,
// and makes nothing.
func TestNetPlansAreTheStepsTheyExplain(t *testing.T) {
	sh, out, host := netShell(t)
	run(t, sh, out, "new a", "unshare net")
	var nftLines []string
	for _, line := range []string{"net bridge", "net veth", "net addr", "net route", "net nat", "net publish 8080:80/udp"} {
		before := host.state(t)
		plan := planOf(t, sh, line)
		if after := host.state(t); after != before {
			t.Fatalf("explain %s changed the host side", line)
		}
		if missing := emptyParts(plan); len(missing) > 0 {
			t.Errorf("explain %s: the plan has no %s", line, strings.Join(missing, ", "))
		}
		if !plan.Planned() {
			t.Errorf("explain %s: a call of the plan has a result, yet nothing ran: %v", line, plan.CallLines())
		}
		sh.lastStep = nil
		run(t, sh, out, line)
		rec := sh.lastStep
		if !slices.Equal(normalCalls(plan), normalCalls(rec)) {
			t.Errorf("%s: the plan's requests differ from the step's:\nplan:\n  %s\nstep:\n  %s", line,
				strings.Join(normalCalls(plan), "\n  "), strings.Join(normalCalls(rec), "\n  "))
		}
		if !slices.Equal(plan.Shell, rec.Shell) || plan.Undo != rec.Undo {
			t.Errorf("%s: the plan's shell lines or undo differ from the step's:\nplan: %q %q\nstep: %q %q", line, plan.Shell, plan.Undo, rec.Shell, rec.Undo)
		}
		for _, l := range rec.Shell {
			if strings.HasPrefix(l, "nft ") {
				nftLines = append(nftLines, l)
			}
		}
	}
	// The steps' `nft` equivalents, run by Debian's nft in a namespace of
	// their own, build the same table the steps built.
	fresh := newTestNetNS(t)
	for _, l := range nftLines {
		fresh.sh(t, l)
	}
	counters := regexp.MustCompile(`packets \d+ bytes \d+`)
	list := func(n *testNetNS) string {
		return counters.ReplaceAllString(n.sh(t, "nft list table ip stepbox"), "packets 0 bytes 0")
	}
	if a, b := list(host), list(fresh); a != b {
		t.Errorf("the shell equivalents build another table:\nsteps:\n%s\nshell:\n%s", a, b)
	}
}

// What the host side already has is explained and left alone: a forward
// chain with policy drop (Docker's FORWARD), ip_forward already on.
func TestNetNATExplainsWhatTheHostHasAndLeavesIt(t *testing.T) {
	sh, out, host := netShell(t)
	host.sh(t, "sysctl -qw net.ipv4.ip_forward=1 && nft add table ip filter && nft add chain ip filter FORWARD '{ type filter hook forward priority 0; policy drop; }'")
	before := host.state(t)
	run(t, sh, out, "net bridge", "net nat")
	for _, want := range []string{"net.ipv4.ip_forward is already 1", "table ip filter, chain FORWARD: policy drop on the forward hook", "net.ipv4.ip_forward is 1 already; left as it is"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("net nat did not say %q:\n%s", want, out)
		}
	}
	if err := sh.Session.Close(); err != nil {
		t.Fatal(err)
	}
	if after := host.state(t); after != before {
		t.Fatalf("teardown changed what the host side had:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// `net route` takes only the bridge's address as a gateway, and judges
// "has a default route already" from the box's kernel table: a route
// deleted by hand can be made again, and a wrong one is replaced.
func TestNetRouteRefusesAGatewayNothingHasAndReadsTheKernelsTable(t *testing.T) {
	sh, out, host := netShell(t)
	before := host.state(t)
	run(t, sh, out, "new a", "unshare net", "net bridge", "net veth", "net addr")
	boxRoute := func() string {
		o, err := exec.Command("nsenter", "--net="+fmt.Sprintf("/proc/%d/ns/net", sh.Current().PID()), "ip", "route", "show", "default").CombinedOutput()
		if err != nil {
			t.Fatalf("ip route show default in box a: %v\n%s", err, o)
		}
		return strings.TrimSpace(string(o))
	}
	assertRefused(t, sh, host, "net route 172.20.0.254", "172.20.0.254 is not the bridge's address: only bridge stepbox0 forwards for the boxes on it, so the gateway is its address, 172.20.0.1")
	if r := boxRoute(); r != "" {
		t.Fatalf("a refused `net route 172.20.0.254` left box a with %q", r)
	}
	run(t, sh, out, "net route")
	assertRefused(t, sh, host, "net route 172.20.0.1", "has its default route via 172.20.0.1 already")

	// Deleted by hand: the kernel has none, so `net route` makes it again.
	run(t, sh, out, "exec ip route del default", "net route 172.20.0.1")
	if r := boxRoute(); !strings.HasPrefix(r, "default via 172.20.0.1 dev eth0") {
		t.Fatalf("after the route was deleted by hand, `net route 172.20.0.1` left %q", r)
	}
	// A wrong one on eth0 is replaced, and the step says it was wrong.
	run(t, sh, out, "exec ip route replace default via 172.20.0.254 dev eth0")
	out.Reset()
	run(t, sh, out, "net route")
	if r := boxRoute(); !strings.HasPrefix(r, "default via 172.20.0.1 dev eth0") {
		t.Fatalf("`net route` did not replace the default route via 172.20.0.254: %q", r)
	}
	if !strings.Contains(out.String(), "replaced box a's default route via 172.20.0.254") {
		t.Errorf("`net route` does not say it replaced the wrong route:\n%s", out)
	}
	if err := sh.Session.Close(); err != nil {
		t.Fatalf("teardown: %v", err)
	}
	if after := host.state(t); after != before {
		t.Fatalf("teardown left the host side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// A route in a table other than main (policy routing: `ip rule` sends
// some traffic by table 100) uses its subnet as much as one in main: `net
// bridge` neither picks that subnet nor takes it when named (issue 15).
func TestNetBridgeSeesRoutesOfEveryTable(t *testing.T) {
	sh, out, host := netShell(t)
	host.sh(t, "ip link add taken0 type veth peer name taken1 && ip link set taken0 up && ip link set taken1 up && ip route add 172.20.0.0/24 dev taken0 table 100")
	assertRefused(t, sh, host, "net bridge br1 172.20.0.128/25", "overlaps the host side's route 172.20.0.0/24 on taken0")
	out.Reset()
	run(t, sh, out, "net bridge")
	if !strings.Contains(out.String(), "subnet 172.20.1.0/24 chosen") {
		t.Errorf("net bridge did not pass over 172.20.0.0/24, routed by table 100:\n%s", out)
	}
}
