package primitives

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ut25 F6: one box fills the task cap every box of the session shares;
// another box's exec then fails naming that cap and the box holding the
// tasks, not advising a `cgroup limit pids` that cannot raise it. The
// test lowers the cap of its own session's parent cgroup to a few dozen
// tasks, so as not to start thousands.
func TestExecAtTheSharedTaskCapNamesTheCapAndTheBoxHoldingIt(t *testing.T) {
	needRoot(t)
	s := newTestSession(t)
	f, _, err := s.NewBox("filler", false)
	if err != nil {
		t.Fatal(err)
	}
	g, _, err := s.NewBox("other", false)
	if err != nil {
		t.Fatal(err)
	}
	dir := parentPids(t, s)
	cur, err := readInt(filepath.Join(dir, "pids.current"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatInt(cur+20, 10)), 0); err != nil {
		t.Fatal(err)
	}
	// Forks until refused; the sleeps stay, the shell exits.
	f.Exec(context.Background(), []string{"sh", "-c", "i=0; while [ $i -lt 40 ]; do sleep 600 & i=$((i+1)); done"}, nil, Stdio{Out: discard{}, Err: discard{}})
	// The shell's own task is free again: the cap is where the box left it.
	if cur, err = readInt(filepath.Join(dir, "pids.current")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatInt(cur, 10)), 0); err != nil {
		t.Fatal(err)
	}
	_, err = g.Exec(context.Background(), []string{"true"}, nil, Stdio{Out: discard{}, Err: discard{}})
	var capErr *TaskCapError
	if !errors.As(err, &capErr) {
		t.Fatalf("exec in another box at the cap: %v, want the shared cap named", err)
	}
	if len(capErr.Boxes) == 0 || capErr.Boxes[0].Box != "filler" || capErr.Boxes[0].Tasks < 15 {
		t.Errorf("the cap's holders are %+v, want box filler first with the sleeps", capErr.Boxes)
	}
	for _, want := range []string{"box filler", filepath.Join(dir, "pids.max"), "rm filler", "no box's own `cgroup limit pids`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	if err := s.Remove("filler"); err != nil {
		t.Fatalf("rm filler: %v", err)
	}
}

// A session whose process has exited but was not reaped (its parent, a
// container's PID 1, reaps nothing) has ended: cleanup and the sweep may
// undo its state.
func TestAZombieSessionHasEnded(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	start, err := startTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%d-%d", pid, start)
	if !sessionAlive(id) {
		t.Fatalf("a running process %s reads as an ended session", id)
	}
	cmd.Process.Kill()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := procState(pid); st == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed process never became a zombie")
		}
	}
	if sessionAlive(id) {
		t.Errorf("zombie %s reads as a live session", id)
	}
}

// The same by the session's lock (session_lock.go): a process that holds
// session.json locked and has exited, unreaped, holds it no more.
func TestAZombieSessionsLockIsFree(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "1-1")
	lock, err := makeSessionDir(dir, sessionFile{PID: 1, Start: 1, PIDNS: ownPIDNS})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = []*os.File{lock}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	lock.Close() // the lock is the open file's: now only sleep holds it
	if !sessionDirAlive(dir) {
		t.Fatal("a session directory whose lock a running process holds reads as an ended session")
	}
	cmd.Process.Kill()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, _ := procState(cmd.Process.Pid); st == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed process never became a zombie")
		}
	}
	if sessionDirAlive(dir) {
		t.Errorf("the lock of zombie %d reads as a live session", cmd.Process.Pid)
	}
}
