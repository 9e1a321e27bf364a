package cgroups

import (
	"bufio"
	"context"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/procfs"

	"stepbox/primitives/step"
)

// requireRoot skips a test that needs the real kernel as root, unless
// STEPBOX_MUST_WORK=1 makes a skip a failure (.ci/run sets it).
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("STEPBOX_MUST_WORK") == "1" {
		t.Fatal("needs root on the real kernel, and STEPBOX_MUST_WORK=1 forbids skipping")
	}
	t.Skip("needs root on the real kernel")
}

// openHost opens the host's cgroups with this test process as the session.
func openHost(t testing.TB) Hierarchy {
	t.Helper()
	requireRoot(t)
	proc, err := procfs.NewDefaultFS()
	if err != nil {
		t.Fatal(err)
	}
	h, err := Open(DefaultRoot, proc, os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newSession makes this test's parent cgroup, stepbox-<test PID>, under
// the test's own cgroups; cleanup ends what is left inside, removes it and
// checks that no cgroup of it remains anywhere.
func newSession(t testing.TB, h Hierarchy) *Group {
	t.Helper()
	parent, _ := newSessionStep(t, h)
	return parent
}

// newSessionStep is newSession, with the record NewParent wrote.
func newSessionStep(t testing.TB, h Hierarchy) (*Group, *step.Step) {
	t.Helper()
	parent, s, err := h.NewParent("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killAll(t, h, parent)
		if _, err := h.Remove(parent); err != nil {
			t.Errorf("remove %s: %v", parent.Name, err)
		}
		if left := findCgroups(t, parent.Name); len(left) > 0 {
			t.Errorf("cgroups left after Remove: %v", left)
		}
	})
	return parent, s
}

// killAll SIGKILLs the processes the test started in g and below.
func killAll(t testing.TB, h Hierarchy, g *Group) {
	t.Helper()
	for _, d := range g.Dirs {
		_ = filepath.WalkDir(d.Path, func(p string, e fs.DirEntry, err error) error {
			if err != nil || !e.IsDir() {
				return nil
			}
			pids, _ := readPIDs(filepath.Join(p, "cgroup.procs"))
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return nil
		})
	}
}

// findCgroups is `find /sys/fs/cgroup -name "*NAME*" -type d`.
func findCgroups(t testing.TB, name string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(DefaultRoot, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return nil // a cgroup removed while we walk
		}
		if e.IsDir() && strings.Contains(e.Name(), name) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// boxShell is `sh -c SCRIPT` started, moved into box, then let go: it
// waits on stdin, so it forks nothing until it is in the cgroup.
type boxShell struct {
	cmd    *exec.Cmd
	stdout *bufio.Reader
	stderr syncBuffer
}

// syncBuffer collects a process's stderr while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startInBox(t *testing.T, h Hierarchy, box *Group, script string) *boxShell {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	b := &boxShell{cmd: exec.CommandContext(ctx, "sh", "-c", "read go; "+script)}
	b.cmd.Stderr = &b.stderr
	stdin, err := b.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	b.stdout = bufio.NewReader(out)
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killAll(t, h, box)
		_ = b.cmd.Process.Kill()
		_ = b.cmd.Wait()
		cancel()
	})
	if _, err := h.Attach(box, b.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	return b
}

// line reads one line the shell printed.
func (b *boxShell) line(t *testing.T) string {
	t.Helper()
	s, err := b.stdout.ReadString('\n')
	if err != nil {
		t.Fatalf("read from box shell: %v (stderr: %s)", err, b.stderr.String())
	}
	return strings.TrimSpace(s)
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// memberOf reports where /proc/PID/cgroup puts pid, by hierarchy name.
func memberOf(t *testing.T, pid int) map[string]string {
	t.Helper()
	p, err := procfs.NewProc(pid)
	if err != nil {
		t.Fatal(err)
	}
	cgs, err := p.Cgroups()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, cg := range cgs {
		m[strings.Join(cg.Controllers, ",")] = cg.Path
	}
	return m
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
