package onefs

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// tree makes root/a/b/f, root/top, a symlink root/out to outside and
// outside/keep, and returns root and outside.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	root, outside = t.TempDir(), t.TempDir()
	for _, d := range []string{filepath.Join(root, "a", "b"), filepath.Join(outside, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(root, "a", "b", "f"), filepath.Join(root, "top"), filepath.Join(outside, "keep"), filepath.Join(outside, "sub", "keep")} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("STEPBOX_MUST_WORK") == "1" {
			t.Fatal("this test needs root to mount, and STEPBOX_MUST_WORK=1 forbids skipping it")
		}
		t.Skip("needs root to mount")
	}
}

// mount mounts and unmounts at the test's end, before its temp dirs go.
func mount(t *testing.T, source, target, fstype string, flags uintptr) {
	t.Helper()
	if err := unix.Mount(source, target, fstype, flags, ""); err != nil {
		t.Fatalf("mount %s on %s: %v", source, target, err)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
}

func assertKept(t *testing.T, outside string) {
	t.Helper()
	for _, f := range []string{"keep", "sub/keep"} {
		if _, err := os.Stat(filepath.Join(outside, f)); err != nil {
			t.Errorf("%s, mounted inside the tree, was removed: %v", f, err)
		}
	}
}

func TestRemoveAllRemovesATreeButNotWhereItsSymlinkLeads(t *testing.T) {
	root, outside := tree(t)
	if err := RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", root, err)
	}
	assertKept(t, outside)
	if err := RemoveAll(root); err != nil {
		t.Errorf("a tree no longer there: %v", err)
	}
}

// A bind mount of a directory of the same filesystem has the same st_dev:
// RESOLVE_NO_XDEV still refuses to cross it.
func TestRemoveAllLeavesABindMountInTheTree(t *testing.T) {
	needRoot(t)
	root, outside := tree(t)
	at := filepath.Join(root, "a", "b", "m")
	if err := os.Mkdir(at, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, outside, at, "", unix.MS_BIND)
	err := RemoveAll(root)
	var me *MountError
	if !errors.As(err, &me) || me.Path != at || !strings.Contains(err.Error(), "left in place") {
		t.Fatalf("RemoveAll with a bind at %s: %v", at, err)
	}
	assertKept(t, outside)
	if _, err := os.Stat(filepath.Join(root, "a", "b", "f")); !os.IsNotExist(err) {
		t.Errorf("the file beside the mount was kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "top")); !os.IsNotExist(err) {
		t.Errorf("the file at the top was kept: %v", err)
	}
}

// The tree's top itself a mount point: nothing in it is touched.
func TestRemoveAllLeavesATopThatIsAMountPoint(t *testing.T) {
	needRoot(t)
	root, outside := tree(t)
	top := filepath.Join(root, "a")
	mount(t, outside, top, "", unix.MS_BIND)
	var me *MountError
	if err := RemoveAll(top); !errors.As(err, &me) || me.Path != top {
		t.Fatalf("RemoveAll of the mount point %s: %v", top, err)
	}
	assertKept(t, outside)
}

// A file bind-mounted over a file: unlink(2) says EBUSY, named as a mount.
func TestRemoveAllLeavesAFileMountedOverAFile(t *testing.T) {
	needRoot(t)
	root, outside := tree(t)
	at := filepath.Join(root, "top")
	mount(t, filepath.Join(outside, "keep"), at, "", unix.MS_BIND)
	var me *MountError
	if err := RemoveAll(root); !errors.As(err, &me) || me.Path != at {
		t.Fatalf("RemoveAll with a file mounted at %s: %v", at, err)
	}
	assertKept(t, outside)
}

// Without openat2 (before 5.6) another filesystem is told by its device
// number.
func TestRemoveAllWithoutOpenat2LeavesAnotherFilesystem(t *testing.T) {
	needRoot(t)
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
	t.Cleanup(func() { openat2 = unix.Openat2 })
	root, _ := tree(t)
	at := filepath.Join(root, "a", "m")
	if err := os.Mkdir(at, 0o755); err != nil {
		t.Fatal(err)
	}
	mount(t, "onefs-test", at, "tmpfs", 0)
	if err := os.WriteFile(filepath.Join(at, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var me *MountError
	if err := RemoveAll(root); !errors.As(err, &me) || me.Path != at {
		t.Fatalf("RemoveAll with a tmpfs at %s: %v", at, err)
	}
	if _, err := os.Stat(filepath.Join(at, "keep")); err != nil {
		t.Errorf("the file on the tmpfs mounted in the tree was removed: %v", err)
	}
}

// A directory of more entries than one read returns, removed while it is
// read.
func TestRemoveAllRemovesAWideDirectory(t *testing.T) {
	root := t.TempDir()
	for i := range 1500 {
		if err := os.WriteFile(filepath.Join(root, "f"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", root, err)
	}
}

// The plan of a removal names the calls the removal then records, in
// the same order, whatever order the filesystem lists a directory in
// (ext4 lists by hash, tmpfs newest first).
func TestPlanNamesTheCallsRemoveMakesInItsOrder(t *testing.T) {
	for _, fs := range []string{"disk", "tmpfs"} {
		t.Run(fs, func(t *testing.T) {
			base := t.TempDir()
			if fs == "tmpfs" {
				if err := unix.Mount("tmpfs", base, "tmpfs", 0, "size=1m"); err != nil {
					t.Skip("no tmpfs:", err)
				}
				t.Cleanup(func() { unix.Unmount(base, unix.MNT_DETACH) })
			}
			top := filepath.Join(base, "layer")
			for _, d := range []string{"root/z/y", "root/a", "etc"} {
				if err := os.MkdirAll(filepath.Join(top, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range []string{"layer.json", "root/z/y/f", "root/a/g", "root/b", "etc/m", "etc/c", "root/q", "root/0"} {
				if err := os.WriteFile(filepath.Join(top, f), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			plan, err := Plan(top, "/shown")
			if err != nil {
				t.Fatal(err)
			}
			var did []string
			if err := Remove(top, func(call string, fn func() error) error {
				did = append(did, strings.Replace(call, top, "/shown", 1))
				return fn()
			}); err != nil {
				t.Fatal(err)
			}
			if strings.Join(plan, "\n") != strings.Join(did, "\n") {
				t.Errorf("the plan:\n%s\nthe removal:\n%s", strings.Join(plan, "\n"), strings.Join(did, "\n"))
			}
			if len(plan) != 14 {
				t.Errorf("the plan has %d calls, want 14 (8 files, 6 directories):\n%s", len(plan), strings.Join(plan, "\n"))
			}
		})
	}
}
