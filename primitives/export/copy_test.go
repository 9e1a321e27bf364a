package export

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A device node the box made (here the host's /dev/null numbers, as a
// box with CAP_MKNOD makes any) stays out of the copy and is counted;
// a fifo is copied.
func TestCopyTreeLeavesOutDeviceNodesAndCountsThem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: mknod")
	}
	src := t.TempDir()
	if err := unix.Mknod(filepath.Join(src, "vda"), unix.S_IFBLK|0o666, int(unix.Mkdev(254, 0))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(src, "kmsg"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 11))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "rootfs")
	devices, _, err := CopyTree(src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if devices != 2 {
		t.Errorf("CopyTree counted %d device nodes; want 2", devices)
	}
	for _, n := range []string{"vda", "kmsg"} {
		if _, err := os.Lstat(filepath.Join(dst, n)); err == nil {
			t.Errorf("device node %s was copied", n)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dst, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the fifo: %v, %v", fi, err)
	}
}

// A sparse file stays sparse: its holes take no blocks in the copy, and
// its data is where it was.
func TestCopyTreeKeepsTheHolesOfASparseFile(t *testing.T) {
	src := t.TempDir()
	p := filepath.Join(src, "big")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("stepbox!"), 512) // 4 KiB
	if _, err := f.WriteAt(data, 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(256 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var sst unix.Stat_t
	if err := unix.Stat(p, &sst); err != nil {
		t.Fatal(err)
	}
	if sst.Blocks*512 >= 1<<20 {
		t.Skipf("this filesystem does not keep holes (%d blocks)", sst.Blocks)
	}
	dst := filepath.Join(t.TempDir(), "rootfs")
	if _, _, err := CopyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	var dst1 unix.Stat_t
	if err := unix.Stat(filepath.Join(dst, "big"), &dst1); err != nil {
		t.Fatal(err)
	}
	if dst1.Size != 256<<20 || dst1.Blocks > sst.Blocks+8 {
		t.Errorf("copy: size %d, %d blocks; want %d bytes in about %d blocks, as the source", dst1.Size, dst1.Blocks, 256<<20, sst.Blocks)
	}
	g, err := os.Open(filepath.Join(dst, "big"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	got := make([]byte, len(data)+8)
	if _, err := g.ReadAt(got, 64<<20-8); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[:8], make([]byte, 8)) || !bytes.Equal(got[8:], data) {
		t.Errorf("the data around offset 64 MiB differs from the source")
	}
}

// An empty directory another user owns, or one others can write, is
// refused as a bundle dir, and nothing is copied into it.
func TestWriteBundleRefusesADirectoryAnotherUserControls(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chown to another user")
	}
	b := sampleBox()
	b.Root = t.TempDir()
	top := t.TempDir()
	theirs, open := filepath.Join(top, "theirs"), filepath.Join(top, "open")
	for _, d := range []string{theirs, open} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(theirs, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{theirs, open} {
		if _, _, err := WriteBundle(d, b); err == nil || !strings.Contains(err.Error(), "give a new directory, or an empty one that is yours") {
			t.Errorf("WriteBundle(%s) = %v; want a refusal saying what is allowed", d, err)
		}
		if des, _ := os.ReadDir(d); len(des) > 0 {
			t.Errorf("%s: written into: %v", d, des)
		}
	}
}
