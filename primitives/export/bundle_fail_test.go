package export

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"

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
