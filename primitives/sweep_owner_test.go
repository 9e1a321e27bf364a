package primitives

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
)

// nestedSleeper starts a process that is PID inner in a PID namespace of
// its own (ns_last_pid, set in that namespace only), where inner is a
// PID no process has here, and returns its host PID.
func nestedSleeper(t *testing.T) (host, inner int) {
	t.Helper()
	for inner = 30001; inner < 32000 && pidAlive(inner); inner++ {
	}
	// unshare(1): a PID namespace, with a mount namespace whose /proc is
	// its own, so that the shell (its PID 1) sets its own ns_last_pid;
	// --kill-child: the namespace ends with unshare, which the test kills.
	script := fmt.Sprintf("echo %d > /proc/sys/kernel/ns_last_pid || exit 1; sleep 30 & wait", inner-1)
	cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if host = nestedPID(inner); host != 0 {
			return host, inner
		}
	}
	t.Fatalf("no process became PID %d in the new PID namespace", inner)
	return 0, 0
}

// The cgroup sweep keeps an empty stepbox-<PID> tree whose PID is dead
// here but alive as a PID of another PID namespace (a stepbox session in
// a container, as `make test-container` runs), says why, and removes it
// once that process has gone.
func TestSweepKeepsTheCgroupOfASessionInAnotherPIDNamespace(t *testing.T) {
	needRoot(t)
	if ownPIDNS != strconv.FormatUint(initPIDNSInode, 10) {
		t.Skip("needs the host's PID namespace: only there is every other one visible")
	}
	proc, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	h, err := cgroups.Open(cgroups.DefaultRoot, proc, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	pl, err := h.Place("")
	if err != nil {
		t.Fatal(err)
	}
	host, inner := nestedSleeper(t)
	top := filepath.Join(cgroups.ExistingAncestor(pl.Dirs[0].Path), "stepbox-test-"+strconv.Itoa(os.Getpid()))
	theirs := filepath.Join(top, cgroups.ParentPrefix+strconv.Itoa(inner))
	dead := filepath.Join(top, "stepbox-999999999")
	for _, d := range []string{top, theirs, dead} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, d := range []string{theirs, dead, top} {
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				t.Error(err)
			}
		}
	})
	st, err := cgroups.Sweep(top, sessionMayLive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(theirs); err != nil {
		t.Fatalf("the sweep removed %s, the tree of a live PID %d in another PID namespace", theirs, inner)
	}
	if _, err := os.Stat(dead); err == nil {
		t.Errorf("the sweep left %s, whose session is gone", dead)
	}
	note := strings.Join(st.Notes, "\n")
	if !strings.Contains(note, fmt.Sprintf("host PID %d is PID %d", host, inner)) {
		t.Errorf("the sweep's notes do not say why it kept %s:\n%s", theirs, note)
	}
	// Once that process has gone, the tree is a dead session's.
	if err := syscall.Kill(host, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); nestedPID(inner) != 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
	}
	if _, err := cgroups.Sweep(top, sessionMayLive); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(theirs); err == nil {
		t.Errorf("the sweep left %s after PID %d's process had gone", theirs, inner)
	}
}
