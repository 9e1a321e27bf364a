package rootfs_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"stepbox/primitives/rootfs"
)

func hostSecret(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "host-secret")
	if err := os.WriteFile(p, []byte("only on the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPivotRootHidesHost(t *testing.T) {
	needRoot(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	secret := hostSecret(t)
	hostHostname, _ := os.ReadFile("/etc/hostname")
	c := startChild(t, "pivot", childArgs{Layers: img.layers, Upper: img.upper, Work: img.work, Merged: img.merged, HostSecret: secret},
		syscall.CLONE_NEWNS|syscall.CLONE_NEWPID)
	rep := c.report(t)

	if rep.Hostname != "stepbox-image\n" {
		t.Errorf("/etc/hostname inside = %q, want the image's", rep.Hostname)
	}
	if len(hostHostname) > 0 && rep.Hostname == string(hostHostname) {
		t.Errorf("the box reads the host's /etc/hostname")
	}
	if rep.HostSecret != "" {
		t.Errorf("a host file is reachable at its host path inside the box: %q", rep.HostSecret)
	}
	if rep.RootMounts != 1 {
		t.Errorf("/proc/1/mountinfo inside shows %d mounts on /, want 1", rep.RootMounts)
	}
	if rep.TmpFSType != "tmpfs" {
		t.Errorf("MountTmpfs(\"/\", \"/tmp\") after pivot_root: /tmp is %q, want tmpfs", rep.TmpFSType)
	}
	if _, err := os.Stat("/bin/busybox"); err == nil {
		ls := strings.Fields(rep.Ls)
		for _, want := range []string{"app", "bin", "etc", "fileA", "web", "box-file"} {
			if !contains(ls, want) {
				t.Errorf("ls / inside = %v, missing %s", ls, want)
			}
		}
		if !strings.HasPrefix(rep.MountFirst, "overlay on / type overlay") {
			t.Errorf("mount inside starts with %q, want the overlay as /", rep.MountFirst)
		}
	}

	// The host sees the box's files through /proc/PID/root.
	pid := c.cmd.Process.Pid
	if got := readFile(t, fmt.Sprintf("/proc/%d/root/box-file", pid)); got != "written in the box\n" {
		t.Errorf("/proc/%d/root/box-file = %q", pid, got)
	}
	// The box's table, read with procfs, agrees with findmnt's.
	tbl, err := rootfs.Mounts(pid)
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, m := range tbl.Mounts {
		ours = append(ours, m.Point+" "+m.FSType)
	}
	out, err := exec.Command("findmnt", "--task", fmt.Sprint(pid), "--noheadings", "--raw", "--output", "TARGET,FSTYPE").Output()
	if err != nil {
		t.Fatalf("findmnt: %v", err)
	}
	theirs := strings.Split(strings.TrimSpace(string(out)), "\n")
	sort.Strings(ours)
	sort.Strings(theirs)
	if strings.Join(ours, "\n") != strings.Join(theirs, "\n") {
		t.Errorf("Mounts(%d) = %q, findmnt = %q", pid, ours, theirs)
	}
	if len(tbl.Mounts) == 0 || tbl.Mounts[0].Point != "/" || tbl.Mounts[0].FSType != "overlay" {
		t.Errorf("the box's first mount is %+v, want the overlay on /", tbl.Mounts)
	}

	// Now the breakout attempt, from inside.
	if _, err := c.stdin.Write([]byte("escape\n")); err != nil {
		t.Fatal(err)
	}
	rep = c.report(t)
	if rep.Escape.Escaped || rep.EscapeSecret != "" {
		t.Errorf("escaped after pivot_root: %+v, host secret %q", rep.Escape, rep.EscapeSecret)
	}
	if !contains(rep.Escape.Root, "box-file") {
		t.Errorf("after the failed escape / holds %v, want the box's own /", rep.Escape.Root)
	}
}

func TestChrootBreakoutEscapes(t *testing.T) {
	needRoot(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	secret := hostSecret(t)
	c := startChild(t, "chroot", childArgs{Layers: img.layers, Upper: img.upper, Work: img.work, Merged: img.merged, HostSecret: secret},
		syscall.CLONE_NEWNS)
	rep := c.report(t)
	if rep.Hostname != "stepbox-image\n" {
		t.Errorf("/etc/hostname inside the chroot = %q, want the image's", rep.Hostname)
	}
	if rep.HostSecret != "" {
		t.Errorf("the host file is reachable before the escape")
	}
	if !rep.Escape.Escaped || rep.Escape.Hops == 0 {
		t.Fatalf("the escape failed from a chroot: %+v", rep.Escape)
	}
	if rep.EscapeSecret != "only on the host\n" {
		t.Errorf("after the escape the host file reads %q", rep.EscapeSecret)
	}
	host, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range host {
		if !contains(rep.Escape.Root, e.Name()) {
			t.Errorf("after the escape / holds %v, want the host's (missing %s)", rep.Escape.Root, e.Name())
			break
		}
	}
}

func TestPivotRootRefusesWithoutOverlay(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	plain := t.TempDir()
	before := b.mountinfo(t)
	err := b.run(func() error { _, err := rootfs.PivotRoot(rootfs.Local, plain, false); return err })
	var perr *rootfs.PivotRootError
	if !errors.As(err, &perr) || perr.Rule != rootfs.PivotNoOverlay {
		t.Fatalf("PivotRoot(plain dir) = %v, want a PivotNoOverlay error", err)
	}
	if !strings.Contains(err.Error(), "mount overlay") {
		t.Errorf("the error does not say what to do: %v", err)
	}
	if after := b.mountinfo(t); after != before {
		t.Errorf("the refused pivot_root changed the box's mounts:\n%s", after)
	}
}

func TestPivotRootRefusesInHostMountNamespace(t *testing.T) {
	needRoot(t)
	hostMountsUnchanged(t)
	dir := t.TempDir()
	// A canary first: if the guard let this through, stop before pivot_root.
	if _, err := rootfs.MountTmpfs(rootfs.Local, dir, "/canary"); !errors.Is(err, rootfs.ErrHostMountNamespace) {
		t.Fatalf("MountTmpfs in the host's namespace = %v, want ErrHostMountNamespace", err)
	}
	_, err := rootfs.PivotRoot(rootfs.Local, dir, false)
	var perr *rootfs.PivotRootError
	if !errors.As(err, &perr) || perr.Rule != rootfs.PivotNoMountNamespace || !errors.Is(err, rootfs.ErrHostMountNamespace) {
		t.Fatalf("PivotRoot in the host's namespace = %v, want PivotNoMountNamespace", err)
	}
	if !strings.Contains(err.Error(), "unshare mnt") {
		t.Errorf("the error does not say what to do: %v", err)
	}
}

// Run inside a container, stepbox's host is the container: PID 1 shares
// its mount namespace, yet mounting there is still refused.
func TestMountRefusedWhenStepboxRunsInAContainer(t *testing.T) {
	needRoot(t)
	hostMountsUnchanged(t)
	c := startChild(t, "container-host", childArgs{Merged: t.TempDir()}, syscall.CLONE_NEWNS|syscall.CLONE_NEWPID)
	c.report(t)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
