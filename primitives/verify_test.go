package primitives

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The pidfd an executor sends for the command it spawned is believed
// only when the host says the process is the executor's child with the
// PID the executor claimed; a process that has already exited is not an
// error, there is just nothing left to signal.
func TestASpawnedCommandsPidfdIsCheckedAgainstTheHost(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open(%d): %v", pid, err)
	}
	pidfd := os.NewFile(uintptr(fd), "pidfd")
	defer pidfd.Close()

	if ok, err := spawnedChild(pidfd, os.Getpid(), pid); !ok || err != nil {
		t.Fatalf("this process's own child %d: got %v, %v; want true, nil", pid, ok, err)
	}
	if _, err := spawnedChild(pidfd, os.Getppid(), pid); err == nil || !strings.Contains(err.Error(), "not of the box's executor") {
		t.Errorf("as a child of PID %d (its grandparent): got %v, want the parent refused", os.Getppid(), err)
	}
	if _, err := spawnedChild(pidfd, os.Getpid(), pid+1); err == nil || !strings.Contains(err.Error(), "as the executor said") {
		t.Errorf("claimed as PID %d: got %v, want the PID refused", pid+1, err)
	}

	cmd.Process.Kill()
	cmd.Wait()
	if ok, err := spawnedChild(pidfd, os.Getpid(), pid); ok || err != nil {
		t.Errorf("after it was reaped: got %v, %v; want false, nil", ok, err)
	}
}
