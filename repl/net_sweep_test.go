package repl

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

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
