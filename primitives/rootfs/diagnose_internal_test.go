package rootfs

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDiagnosePivotNamesTheBrokenRule breaks pivot_root(2)'s rules for
// real, with the raw call, and checks each EINVAL gets its own rule.
func TestDiagnosePivotNamesTheBrokenRule(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("STEPBOX_MUST_WORK") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
	// thread-self, not self: /proc/self is the thread group leader's, and
	// the goroutine below may have locked that thread and left it, wedged,
	// in the namespace it made.
	hostBefore, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	// t.TempDir() may be on a mount of its own (a tmpfs or disk /tmp):
	// the first case needs a directory of the root mount itself.
	onRoot := dirOnRootMount(t)
	tmpfs, shared := t.TempDir(), t.TempDir()
	type result struct {
		onRootMount, notMount, sharedParent PivotRule
		detail                              string
		err                                 error
	}
	done := make(chan result)
	go func() {
		// Never unlocked: the runtime drops this thread and its namespace.
		runtime.LockOSThread()
		var r result
		defer func() { done <- r }()
		pivotFails := func(dir string, want unix.Errno) (PivotRule, string, error) {
			if err := unix.Chdir(dir); err != nil {
				return 0, "", err
			}
			err := unix.PivotRoot(".", ".")
			if err != want {
				return 0, "", fmt.Errorf("pivot_root in %s = %v, want %v", dir, err, want)
			}
			rule, detail := pivotRule(Local, err, dir)
			return rule, detail, nil
		}
		if r.err = unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); r.err != nil {
			return
		}
		if r.err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); r.err != nil {
			return
		}
		if r.onRootMount, _, r.err = pivotFails(onRoot, unix.EBUSY); r.err != nil {
			return
		}
		// A directory inside a tmpfs: another mount, but not a mount point.
		if r.err = unix.Mount("tmpfs", tmpfs, "tmpfs", 0, ""); r.err != nil {
			return
		}
		if r.err = unix.Mkdir(tmpfs+"/sub", 0o755); r.err != nil {
			return
		}
		if r.notMount, _, r.err = pivotFails(tmpfs+"/sub", unix.EINVAL); r.err != nil {
			return
		}
		// Shared inside the box's namespace only: its peers are all here.
		if r.err = unix.Mount("tmpfs", shared, "tmpfs", 0, ""); r.err != nil {
			return
		}
		if r.err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_SHARED, ""); r.err != nil {
			return
		}
		r.sharedParent, r.detail, r.err = pivotFails(shared, unix.EINVAL)
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.onRootMount != PivotNotMountPoint {
		t.Errorf("pivot_root into a dir of the root mount: rule %d, want PivotNotMountPoint", r.onRootMount)
	}
	if r.notMount != PivotNotMountPoint {
		t.Errorf("pivot_root into a plain dir: rule %d, want PivotNotMountPoint", r.notMount)
	}
	if r.sharedParent != PivotSharedMount {
		t.Errorf("pivot_root under a shared parent: rule %d (%s), want PivotSharedMount", r.sharedParent, r.detail)
	}
	msg := (&PivotRootError{Rule: r.sharedParent, NewRoot: shared, Detail: r.detail, Err: unix.EINVAL}).Error()
	t.Log(msg)
	if hostAfter, err := os.ReadFile("/proc/thread-self/mountinfo"); err != nil || string(hostAfter) != string(hostBefore) {
		t.Errorf("the host's mount table changed (%v)", err)
	}
}

// dirOnRootMount returns a directory of the host that lies on the root
// mount, below no other mount point: pivot_root there fails (EBUSY) and
// changes nothing.
func dirOnRootMount(t *testing.T) string {
	t.Helper()
	mounts, err := threadMounts(Local)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/etc", "/usr", "/var", "/root", "/bin"} {
		real, err := realPath(dir)
		if err != nil {
			continue
		}
		onRoot := true
		for _, m := range mounts {
			if m.MountPoint != "/" && (real == m.MountPoint || strings.HasPrefix(real, m.MountPoint+"/")) {
				onRoot = false
			}
		}
		if onRoot {
			return real
		}
	}
	return "/"
}
