package repl

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"stepbox/primitives"
	"stepbox/primitives/network"
)

// binaryNetHost is the host side for a test of the stepbox binary: a
// namespace the test made, its state before, and a state dir.
func binaryNetHost(t *testing.T) (host *testNetNS, before, dir string) {
	t.Helper()
	needRoot(t)
	hostUnchanged(t)
	host = newTestNetNS(t)
	t.Setenv(network.HostNSEnv, host.Path)
	return host, host.state(t), t.TempDir()
}

// crashedNetSession starts a session that builds a network and leaves a
// daemon in its box, then kills it with SIGKILL: what a lecturer finds
// on a lab machine after a crash.
func crashedNetSession(t *testing.T, dir string) int {
	t.Helper()
	cmd, w := startSession(t, dir, "new a\nunshare net mnt\nexec mount -t tmpfs www /mnt\nexec busybox httpd -p 80 -h /mnt\n"+
		"net bridge\nnet veth\nnet addr\nnet route\nnet nat\nnet publish 8080:80\n")
	defer w.Close()
	pid := cmd.Process.Pid
	cmd.Process.Kill()
	cmd.Wait()
	return pid
}

// `stepbox cleanup` counts the box's surviving daemon among the processes
// it ended, and lists what it removed.
func TestCleanupSaysWhatItEndedDeletedAndWroteBack(t *testing.T) {
	host, before, dir := binaryNetHost(t)
	crashedNetSession(t, dir)
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	for _, want := range []string{"1 crashed session cleaned", "(busybox httpd -p 80 -h /mnt) of box a", "deleted bridge stepbox0",
		"deleted veth veth", "deleted nft table ip stepbox", "wrote net.ipv4.ip_forward back: 1 → 0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("cleanup's report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), " 0 processes ended") {
		t.Errorf("cleanup ended the box's httpd but counts none:\n%s", out)
	}
	assertNoSessions(t, dir)
	if after := host.state(t); after != before {
		t.Fatalf("cleanup left the host side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// The next session cleans up a crashed one's leftovers and says so, in
// one block before anything else.
func TestANewSessionSaysWhatACrashedOneLeftAndItRemoved(t *testing.T) {
	host, before, dir := binaryNetHost(t)
	pid := crashedNetSession(t, dir)
	next := exec.Command(stepboxBinary(t), "--state-dir", dir, "run", "-")
	next.Stdin = strings.NewReader("boxes\n")
	out, err := next.CombinedOutput()
	if err != nil {
		t.Fatalf("the next session: %v\n%s", err, out)
	}
	head := fmt.Sprintf("stepbox: cleaned up after crashed session PID %d:\n", pid)
	if !strings.HasPrefix(string(out), head) {
		t.Fatalf("the next session does not begin with %q:\n%s", head, out)
	}
	for _, want := range []string{"(busybox httpd -p 80 -h /mnt) of box a", "deleted bridge stepbox0", "deleted nft table ip stepbox", "wrote net.ipv4.ip_forward back: 1 → 0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the next session's report lacks %q:\n%s", want, out)
		}
	}
	if after := host.state(t); after != before {
		t.Fatalf("the next session left the host side changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// A dead session's ledger undoes only what the kernel shows is that
// session's own: a stale or planted ledger (here in a second state dir)
// that names a live session's bridge, veth, nft table and rules, its
// subnet's connections and the sysctls it changed, in its host side,
// leaves them all and says what it refused (ut30 F1). The live session's
// own ledger still undoes everything after it is killed.
func TestADeadLedgerLeavesALiveSessionsNetworkAndSaysSo(t *testing.T) {
	host, initial, dir := binaryNetHost(t)
	cmd, w := startSession(t, dir, "new a\nunshare net\nnet bridge\nnet veth\nnet addr\nnet route\nnet nat\nnet publish 8080:80\n")
	defer w.Close()
	before := host.state(t)
	ns, err := network.NSAt(host.Path)
	if err != nil {
		t.Fatal(err)
	}
	var links []string
	for _, l := range strings.Split(host.sh(t, "ip -o link show type veth; ip -o link show type bridge"), "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
			links = append(links, name)
		}
	}
	if len(links) != 2 {
		t.Fatalf("the live session made links %v, want its bridge and its veth", links)
	}
	var ledger []string
	add := func(u network.Undo) {
		raw, _ := json.Marshal(u)
		line, _ := json.Marshal(primitives.Resource{Kind: primitives.ResNet, Net: raw})
		ledger = append(ledger, string(line))
	}
	add(network.Undo{What: network.UndoConntrack, NS: ns, Name: "172.20.0.0/24"})
	for _, l := range links {
		add(network.Undo{What: network.UndoLink, NS: ns, Name: l})
	}
	add(network.Undo{What: network.UndoSysctl, NS: ns, Name: "net.ipv4.ip_forward", Value: "0"})
	add(network.Undo{What: network.UndoSysctl, NS: ns, Name: "net.ipv4.conf.stepbox0.route_localnet", Value: "0"})
	add(network.Undo{What: network.UndoTable, NS: ns, Name: network.Table})
	add(network.Undo{What: network.UndoRules, NS: ns, Name: network.Table, Tag: network.NATTag("stepbox0")})
	add(network.Undo{What: network.UndoRules, NS: ns, Name: network.Table, Tag: network.PublishTag("a", network.Port{Host: 8080, Box: 80, Proto: "tcp"})})
	add(network.Undo{What: network.UndoChain, NS: ns, Name: network.Table, Tag: "trace_output"})
	dead := t.TempDir()
	sess := filepath.Join(dead, "run", "sessions", "4194304-1")
	if err := os.MkdirAll(filepath.Join(sess, "boxes"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(sess, "session.json"), []byte(`{"pid":4194304,"start":1}`), 0o600)
	if err := os.WriteFile(filepath.Join(sess, "ledger.jsonl"), []byte(strings.Join(ledger, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dead, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	t.Logf("cleanup said:\n%s", out)
	if after := host.state(t); after != before {
		t.Fatalf("cleanup of a dead ledger changed the live session's network:\nbefore:\n%s\nafter:\n%s\ncleanup said:\n%s", before, after, out)
	}
	for _, want := range append(links, "table ip stepbox was made by stepbox session", "sysctl net.ipv4.ip_forward=0", "net.ipv4.conf.stepbox0.route_localnet=0", "conntrack entries of 172.20.0.0/24") {
		if !strings.Contains(string(out), want) {
			t.Errorf("cleanup does not name what it refused (%q):\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "deleted ") || strings.Contains(string(out), "wrote ") {
		t.Errorf("cleanup says it removed what it left:\n%s", out)
	}
	assertNoSessions(t, dead)
	kill9AndCleanup(t, cmd, dir, host, initial)
}
