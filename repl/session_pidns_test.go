package repl

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pidnsSession starts `stepbox run -` as PID 1 of a PID namespace of its
// own (as `make test-container` runs, or a container sharing the state
// dir), feeds it script and waits until it has run it. The session ends
// when its stdin closes (the returned closer), else at the test's end.
func pidnsSession(t *testing.T, dir, script string, out *bytes.Buffer) (*exec.Cmd, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", stepboxBinary(t), "--state-dir", dir, "run", "-")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = r, out, out
	if err := cmd.Start(); err != nil {
		t.Skipf("unshare --pid: %v", err)
	}
	r.Close()
	ready := filepath.Join(dir, fmt.Sprintf("ready-%d", cmd.Process.Pid))
	t.Cleanup(func() {
		w.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Signal(syscall.SIGTERM)
			<-done
		}
		exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").Run()
	})
	w.WriteString(script + "!touch " + ready + "\n")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			return cmd, w
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session in its own PID namespace never got ready:\n%s", out)
		}
	}
}

// sleeperPID finds the host PID of the (only) process running `sleep
// arg`, live (not a zombie); 0 if there is none.
func sleeperPID(t *testing.T, arg string) int {
	t.Helper()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || string(b) != "sleep\x00"+arg+"\x00" {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(st, ')'); err == nil && i > 0 && i+2 < len(st) && st[i+2] != 'Z' {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			return pid
		}
	}
	return 0
}

// runInPIDNS runs a whole `stepbox run -` script as PID 1 of a PID
// namespace of its own, to its end.
func runInPIDNS(t *testing.T, dir, script string) string {
	t.Helper()
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", stepboxBinary(t), "--state-dir", dir, "run", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("second session: %v", err)
	}
	return string(out)
}

// A session is alive by the lock it holds on its session.json, not by a
// PID read in the sweeper's PID namespace (ut30 F9): a second session on
// the same state dir, PID 1 of another PID namespace as the first is, saw
// PID 1 with another start time and tore the first down as crashed; so
// did root's `stepbox cleanup` from the host, counting 0 processes ended.
func TestASessionInAnotherPIDNamespaceIsNotSweptAsCrashed(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := searchableTempDir(t)
	var outA bytes.Buffer
	_, w := pidnsSession(t, dir, "new e1\nexec sh -c 'sleep 50191 >/dev/null 2>&1 </dev/null &'\n", &outA)
	sleeper := sleeperPID(t, "50191")
	if sleeper == 0 {
		t.Fatalf("the first session's box command is not running:\n%s", outA.String())
	}
	sessions, _ := filepath.Glob(filepath.Join(dir, "run", "sessions", "1-*"))
	if len(sessions) != 1 {
		t.Fatalf("first session's state: %v", sessions)
	}
	out := runInPIDNS(t, dir, "boxes\n")
	if strings.Contains(out, "crashed") || sleeperPID(t, "50191") != sleeper {
		t.Fatalf("a second session in another PID namespace swept the live first one (its box command %d is gone):\n%s", sleeper, out)
	}
	if _, err := os.Stat(sessions[0]); err != nil {
		t.Fatalf("the live first session's state is gone after the second session: %v\n%s", err, out)
	}
	c, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	if err != nil || strings.Contains(string(c), "crashed session cleaned") || sleeperPID(t, "50191") != sleeper {
		t.Fatalf("the host's `stepbox cleanup` swept a live session in a PID namespace (%v; box command %d there: %t):\n%s", err, sleeper, sleeperPID(t, "50191") == sleeper, c)
	}
	if _, err := os.Stat(sessions[0]); err != nil {
		t.Fatalf("the live session's state is gone after the host's cleanup: %v\n%s", err, c)
	}
	// Its own end still tears down everything.
	w.Close()
	for deadline := time.Now().Add(20 * time.Second); sleeperPID(t, "50191") != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first session's end left its box command %d:\n%s", sleeper, outA.String())
		}
	}
}

// A session's parent cgroup is named by its whole ID, not its PID (ut30
// F7): two sessions in PID namespaces of their own under one cgroup are
// both PID 1 and both took stepbox-1. The second's box then ran in no
// tracking cgroup, and its end killed the first's box and removed the
// first's cgroups.
func TestTwoSessionsInPIDNamespacesKeepTheirOwnCgroups(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := searchableTempDir(t)
	var outA bytes.Buffer
	pidnsSession(t, dir, "new c1\ncgroup new\ncgroup attach\nexec sh -c 'sleep 50192 >/dev/null 2>&1 </dev/null &'\n", &outA)
	sleeper := sleeperPID(t, "50192")
	if sleeper == 0 {
		t.Fatalf("the first session's box command is not running:\n%s", outA.String())
	}
	before, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sleeper))
	if err != nil || !strings.Contains(string(before), "/stepbox-1") {
		t.Fatalf("the first session's box command is not in its cgroups (%v):\n%s", err, before)
	}
	out := runInPIDNS(t, dir, "new c2\ncgroup new\ncgroup attach\nexec sh -c 'grep -q /stepbox-1 /proc/self/cgroup && echo C2-TRACKED'\n")
	if !strings.Contains(out, "C2-TRACKED") {
		t.Errorf("the second session's box is in no stepbox cgroup:\n%s", out)
	}
	if sleeperPID(t, "50192") != sleeper {
		t.Fatalf("the second session's end killed the first session's box command %d:\n%s", sleeper, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(before)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 || !strings.Contains(parts[2], "/stepbox-") {
			continue
		}
		ctrl := strings.TrimPrefix(parts[1], "name=")
		if ctrl == "" {
			ctrl = "unified"
		}
		matches, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*"+ctrl+"*", parts[2]))
		if parts[1] == "" {
			if m, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", parts[2])); len(m) > 0 {
				matches = append(matches, m...)
			}
		}
		if len(matches) == 0 {
			t.Errorf("the first session's cgroup %s (%s) is gone after the second session:\n%s", parts[2], parts[1], out)
		}
	}
}

// A tracking cgroup that is there already (planted by a box sharing the
// host's cgroupfs, say) is not stepbox's: `new` fails and names it,
// rather than saying ✓ with the box in no tracking cgroup (ut30 F7).
func TestNewRefusesATrackingCgroupThatIsThereAlready(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	out, code := runStepbox(t, dir, "new a1\n"+
		"!find /sys/fs/cgroup -maxdepth 8 -type d \\( -name \"stepbox-$PPID\" -o -name \"stepbox-$PPID-*\" \\) -exec mkdir {}/b2.track \\;\n"+
		"new b2\n")
	if code == 0 || !strings.Contains(out, "could not be made fresh") || !strings.Contains(out, "b2.track") {
		t.Fatalf("new b2 with b2.track planted: exit %d, want it refused naming the cgroup:\n%s", code, out)
	}
	if strings.Contains(out, "✓ box b2") {
		t.Fatalf("new b2 said ✓ without a tracking cgroup:\n%s", out)
	}
}
