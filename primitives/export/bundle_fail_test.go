package export

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// inSmallFilesystem runs fn with a directory on a 64 KiB tmpfs that only
// fn's thread sees: a mount namespace of its own, private, which ends
// with the thread (never unlocked), so the host's mount table is never
// touched.
func inSmallFilesystem(t *testing.T, fn func(dir string)) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: a mount namespace and a tmpfs")
	}
	dir := t.TempDir()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_FS); err != nil {
			t.Errorf("unshare(CLONE_NEWNS|CLONE_FS): %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Errorf("make / private: %v", err)
			return
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
			t.Errorf("mount tmpfs: %v", err)
			return
		}
		fn(dir)
	}()
	<-done
}

// A bundle that cannot be written (here: the disk fills while rootfs is
// copied) leaves nothing of it: no half rootfs/, and the directory only
// if it was there before, empty as it was.
func TestAFailedBundleRemovesWhatItWroteAndNothingElse(t *testing.T) {
	b := sampleBox()
	b.Root = t.TempDir()
	if err := os.Mkdir(filepath.Join(b.Root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 256<<10)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(b.Root, "etc", "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	inSmallFilesystem(t, func(fs string) {
		fresh := filepath.Join(fs, "fresh")
		if _, _, err := WriteBundle(fresh, b); err == nil {
			t.Errorf("WriteBundle onto a full disk: no error")
		}
		if _, err := os.Lstat(fresh); err == nil {
			des, _ := os.ReadDir(fresh)
			t.Errorf("the failed bundle left %s, which it made, behind: %v", fresh, des)
		}
		kept := filepath.Join(fs, "kept")
		if err := os.Mkdir(kept, 0o700); err != nil {
			t.Error(err)
			return
		}
		if _, _, err := WriteBundle(kept, b); err == nil {
			t.Errorf("WriteBundle onto a full disk: no error")
		}
		if des, err := os.ReadDir(kept); err != nil || len(des) > 0 {
			t.Errorf("%s, there before and empty, after a failed bundle: %v %v", kept, des, err)
		}
	})
}

// A bundle keeps the box's set-user-ID files (the container runc runs
// has them as the box did), and no other user reaches them: the bundle's
// directory, even one that was there open to all, is the caller's alone,
// or, with a user namespace, searchable by the group the bundle maps its
// root to, which runc's init opens rootfs/ as (ut29 F11).
func TestABundlesSetUIDFilesAreReachableByNoOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: files of another owner")
	}
	b := sampleBox()
	b.Root = t.TempDir()
	suid := filepath.Join(b.Root, "suidsh")
	if err := os.WriteFile(suid, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(suid, 1000065536, 1000065536); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(suid, 0o4755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		user bool
		mode uint32
		gid  uint32
	}{{"host", false, 0o700, 0}, {"user namespace", true, 0o710, 1000065536}} {
		t.Run(c.name, func(t *testing.T) {
			b := b
			if c.user {
				b.Namespaces = append(slices.Clone(b.Namespaces), "user")
				b.UIDMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000065536, Size: 65536}}
				b.GIDMap = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000065536, Size: 65536}}
			}
			// An empty directory of the caller's, open to all, as the
			// learner may give.
			dir := filepath.Join(t.TempDir(), "bundle")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
				t.Fatal(err)
			}
			if _, _, err := WriteBundle(dir, b); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dir, "rootfs", "suidsh"), &st); err != nil || st.Mode&0o7777 != 0o4755 || st.Uid != 1000065536 {
				t.Errorf("rootfs/suidsh: mode %04o uid %d (%v); want the box's 4755 of uid 1000065536", st.Mode&0o7777, st.Uid, err)
			}
			if err := unix.Lstat(dir, &st); err != nil || st.Mode&0o7777 != c.mode || st.Gid != c.gid {
				t.Errorf("the bundle's directory: mode %04o gid %d (%v); want %04o, gid %d: no other user may reach rootfs/suidsh", st.Mode&0o7777, st.Gid, err, c.mode, c.gid)
			}
		})
	}
}
