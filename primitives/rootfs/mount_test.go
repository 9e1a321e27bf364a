package rootfs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// findmntFSType asks findmnt, from the host, what the box's thread has
// mounted on target.
func findmntFSType(t *testing.T, b *testBox, target string) string {
	t.Helper()
	out, err := exec.Command("findmnt", "--task", fmt.Sprint(b.tid), "--noheadings", "--output", "FSTYPE", "--mountpoint", target).Output()
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func TestMountProcSysTmpfsInsideMergedDir(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	mountImage(t, b, img)
	for _, tc := range []struct {
		fstype, target string
		mount          func(k rootfs.Kernel, root, target string) (*step.Step, error)
	}{
		{"proc", "/proc", rootfs.MountProc},
		{"sysfs", "/sys", rootfs.MountSys},
		{"tmpfs", "/run/lock", rootfs.MountTmpfs}, // /run is missing: created in the upper dir
	} {
		var st *step.Step
		if err := b.run(func() (err error) { st, err = tc.mount(rootfs.Local, img.merged, tc.target); return err }); err != nil {
			t.Fatal(err)
		}
		host := img.merged + tc.target
		if got := findmntFSType(t, b, host); got != tc.fstype {
			t.Errorf("findmnt: %s is %q, want %s", host, got, tc.fstype)
		}
		if st.Undo != "umount "+host {
			t.Errorf("undo = %q", st.Undo)
		}
	}
	if fi, err := os.Stat(img.upper + "/run/lock"); err != nil || !fi.IsDir() {
		t.Errorf("the missing mount point was not created in the box: %v", err)
	}
	err := b.run(func() error {
		if _, err := os.Stat(img.merged + "/proc/self/status"); err != nil {
			return err
		}
		return os.WriteFile(img.merged+"/sys/kernel/uevent_helper", []byte("x"), 0)
	})
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("writing to the box's /sys = %v, want EROFS", err)
	}
}

func TestMountDevHasMinimalDevices(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	mountImage(t, b, img)
	var st *step.Step
	if err := b.run(func() (err error) { st, err = rootfs.MountDev(rootfs.Local, img.merged, "/dev"); return err }); err != nil {
		t.Fatal(err)
	}
	dev := img.merged + "/dev"
	if got := findmntFSType(t, b, dev); got != "tmpfs" {
		t.Errorf("findmnt: %s is %q, want tmpfs", dev, got)
	}
	if got := findmntFSType(t, b, dev+"/pts"); got != "devpts" {
		t.Errorf("findmnt: %s/pts is %q, want devpts", dev, got)
	}
	err := b.run(func() error {
		for name, rdev := range map[string]uint64{"null": unix.Mkdev(1, 3), "zero": unix.Mkdev(1, 5), "random": unix.Mkdev(1, 8), "urandom": unix.Mkdev(1, 9), "tty": unix.Mkdev(5, 0)} {
			var s unix.Stat_t
			if err := unix.Stat(dev+"/"+name, &s); err != nil {
				return err
			}
			if s.Mode&unix.S_IFMT != unix.S_IFCHR || s.Rdev != rdev || s.Mode&0o777 != 0o666 {
				return fmt.Errorf("/dev/%s: mode %o rdev %#x", name, s.Mode, s.Rdev)
			}
		}
		if err := os.WriteFile(dev+"/null", []byte("gone"), 0); err != nil {
			return err
		}
		if l, err := os.Readlink(dev + "/ptmx"); err != nil || l != "pts/ptmx" {
			return fmt.Errorf("/dev/ptmx -> %q (%v)", l, err)
		}
		if _, err := os.Stat(dev + "/pts/ptmx"); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.mountinfo(t), "devpts devpts rw,mode=620,ptmxmode=666") {
		t.Errorf("devpts is not a new instance with ptmxmode=666:\n%s", b.mountinfo(t))
	}
	if len(st.Calls) < 12 || !strings.Contains(fmt.Sprint(st.Calls), `mknod("`+dev+`/null", S_IFCHR|0666, makedev(0x1, 0x3)) = 0`) {
		t.Errorf("calls = %v", st.Calls)
	}
}

func TestMountBindVolumes(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	mountImage(t, b, img)
	vol := t.TempDir()
	writeTree(t, vol, map[string]string{"data": "on the host\n"})
	err := b.run(func() error {
		if _, err := rootfs.MountBind(rootfs.Local, vol, img.merged, "/srv/rw", false); err != nil {
			return err
		}
		if _, err := rootfs.MountBind(rootfs.Local, vol, img.merged, "/srv/ro", true); err != nil {
			return err
		}
		if got := readFile(t, img.merged+"/srv/ro/data"); got != "on the host\n" {
			return fmt.Errorf("ro volume reads %q", got)
		}
		if err := os.WriteFile(img.merged+"/srv/ro/new", nil, 0o644); !errors.Is(err, unix.EROFS) {
			return fmt.Errorf("writing to the read-only volume = %v, want EROFS", err)
		}
		return os.WriteFile(img.merged+"/srv/rw/new", []byte("from the box\n"), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, vol+"/new"); got != "from the box\n" {
		t.Errorf("the host sees %q in the volume", got)
	}
	if mi := b.mountinfo(t); !strings.Contains(mi, img.merged+"/srv/ro ro,") {
		t.Errorf("the read-only bind is not ro in mountinfo:\n%s", mi)
	}
}

func TestMountBindRefusesMissingSource(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	mountImage(t, b, img)
	before := b.mountinfo(t)
	err := b.run(func() error {
		_, err := rootfs.MountBind(rootfs.Local, "/nonexistent/volume", img.merged, "/data", false)
		return err
	})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "/nonexistent/volume") {
		t.Fatalf("MountBind of a missing source = %v", err)
	}
	if b.mountinfo(t) != before {
		t.Errorf("a refused bind changed the box's mounts")
	}
	if _, err := os.Lstat(img.upper + "/data"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused bind created its target")
	}
}

func TestMountTargetSymlinkStaysInsideBox(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	// An image whose /escape points at the host's /etc if followed naively.
	writeTree(t, img.layers[2].Dir, map[string]string{"escape": "->/etc", "up": "->../../../../../../.."})
	mountImage(t, b, img)
	before := mountPoints(b.mountinfo(t))
	for _, target := range []string{"/escape", "/up/tmp"} {
		var st *step.Step
		if err := b.run(func() (err error) { st, err = rootfs.MountTmpfs(rootfs.Local, img.merged, target); return err }); err != nil {
			t.Fatal(err)
		}
		host := strings.TrimPrefix(st.Undo, "umount ")
		if !strings.HasPrefix(host, img.merged+"/") {
			t.Errorf("tmpfs for %s went to %s, outside the box", target, host)
		}
	}
	mi := b.mountinfo(t)
	for _, want := range []string{img.merged + "/etc ", img.merged + "/tmp "} {
		if !strings.Contains(mi, want) {
			t.Errorf("no mount on %s:\n%s", want, mi)
		}
	}
	for _, p := range mountPoints(mi) {
		if !slices.Contains(before, p) && !strings.HasPrefix(p, img.merged+"/") {
			t.Errorf("a symlink led a mount out of the box, onto %s:\n%s", p, mi)
		}
	}
}

// mountPoints lists the mount points of a mountinfo table (field 5).
func mountPoints(mountinfo string) []string {
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			out = append(out, f[4])
		}
	}
	return out
}
