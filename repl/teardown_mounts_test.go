package repl

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// scratchTree is a directory of the test's own holding keep1 and
// sub/keep2, which a box bind-mounts into stepbox's state dir.
func scratchTree(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"keep1", "sub/keep2"} {
		if err := os.WriteFile(filepath.Join(d, f), []byte("kept\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// assertTreeKept fails the test unless scratchTree's files are all there.
func assertTreeKept(t *testing.T, d, after string) {
	t.Helper()
	for _, f := range []string{"keep1", "sub/keep2"} {
		if _, err := os.Stat(filepath.Join(d, f)); err != nil {
			t.Errorf("%s deleted %s, which a box bind-mounted into the state dir: %v", after, f, err)
		}
	}
}

// unmountAll lazily unmounts every mount stacked at p (the test's own
// binds), so that no temp dir's removal reaches the scratch tree.
func unmountAll(p string) {
	for unix.Unmount(p, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW) == nil {
	}
}

// bindFromBox is a box command that, as host root in the box, enters the
// mount namespace of process pid (the session) and bind-mounts from onto
// to there: a mount under the state dir stepbox did not make.
func bindFromBox(pid int, from, to string) string {
	return fmt.Sprintf("exec nsenter -t %d -m -- sh -c 'mkdir -p %s && mount --bind %s %s'", pid, to, from, to)
}

// A host-root box bind-mounts a host directory onto a path in its box
// dir outside its upper tmpfs: `rm`, and the session's end after it,
// remove the box's state around it, never what is mounted there, and
// name the mount.
func TestRmNeverDeletesThroughAMountInTheBoxDir(t *testing.T) {
	sh, out := liveShell(t)
	scratch := scratchTree(t)
	run(t, sh, out, "new a", "unshare mnt", "mount overlay base")
	b, err := sh.Session.Box("a")
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(b.Dir, "extra")
	defer unmountAll(extra)
	run(t, sh, out, bindFromBox(os.Getpid(), scratch, extra))
	msg := errorOf(t, sh, out, "rm a")
	assertTreeKept(t, scratch, "rm a")
	if !strings.Contains(msg, extra) || !strings.Contains(msg, "left in place") {
		t.Errorf("rm a does not name the mount at %s it left:\n%s", extra, msg)
	}
	if left, _ := os.ReadDir(b.Dir); len(left) != 1 || left[0].Name() != "extra" {
		t.Errorf("rm a left %v in the box dir, want only the mount point extra", left)
	}
	err = sh.Session.Close()
	assertTreeKept(t, scratch, "the session's end")
	if err == nil || !strings.Contains(err.Error(), extra) || !strings.Contains(err.Error(), "left in place") {
		t.Errorf("the session's end (%v) does not name the mount at %s it left", err, extra)
	}
}

// The same mount on the session dir of a session that was SIGKILLed:
// `stepbox cleanup` ends the box and removes its state, never what is
// mounted there, and names the mount.
func TestCleanupNeverDeletesThroughAMountInACrashedSessionDir(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	scratch := scratchTree(t)
	cmd, w := startSession(t, dir, "new a\nunshare mnt\nmount overlay base\n")
	defer w.Close()
	sessions, err := filepath.Glob(filepath.Join(dir, "run", "sessions", "*"))
	if err != nil || len(sessions) != 1 {
		t.Fatalf("the session's dir: %v %v", sessions, err)
	}
	extra := filepath.Join(sessions[0], "extra2")
	defer unmountAll(extra)
	ready := filepath.Join(dir, "bound")
	fmt.Fprintf(w, "%s\n!touch %s\n", bindFromBox(cmd.Process.Pid, scratch, extra), ready)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the box's bind mount never got done")
		}
	}
	if _, err := os.Stat(filepath.Join(extra, "keep1")); err != nil {
		t.Fatalf("the box's bind mount is not at %s: %v", extra, err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	assertTreeKept(t, scratch, "stepbox cleanup")
	if err == nil || !strings.Contains(string(out), extra) || !strings.Contains(string(out), "left in place") {
		t.Errorf("stepbox cleanup (%v) does not name the mount at %s it left:\n%s", err, extra, out)
	}
	unmountAll(extra)
	if out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput(); err != nil {
		t.Errorf("stepbox cleanup once the mount is gone: %v\n%s", err, out)
	}
	assertNoSessions(t, dir)
}
