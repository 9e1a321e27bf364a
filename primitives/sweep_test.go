package primitives

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// `stepbox cleanup` ends the processes of sessions that are gone, but
// only of sessions in its own PID namespace: a stepbox running in a
// container on the same machine names its sessions by PIDs of the
// container's, which mean nothing here.
func TestSweepEndsOnlyItsOwnPIDNamespacesStrays(t *testing.T) {
	needRoot(t)
	start := func(pidns string) *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		// PIDs stay below PID_MAX_LIMIT (4194304), so this session is gone.
		// (Not "1-1": a freshly booted VM's init may well have started at
		// tick 1.)
		cmd.Env = []string{envSession + "=4194304-1", envBox + "=web", envPIDNS + "=" + pidns}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		// The markers show once execve is done: before, the child's
		// environment is still the test's (slow under emulation).
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/environ"); bytes.Contains(b, []byte(envPIDNS+"=")) {
				break
			}
		}
		return cmd
	}
	theirs := start("4026530000")
	ours := start(ownPIDNS)
	if _, err := Sweep(Dirs{Run: t.TempDir(), Lib: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if err := theirs.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("cleanup ended a process of another PID namespace's session: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- ours.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Errorf("cleanup left a stray of a gone session of its own PID namespace")
	}
}
