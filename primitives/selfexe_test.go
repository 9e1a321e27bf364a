package primitives

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSelfExeCopy times the sealed copy of the running binary a
// session makes once (selfexe.go), and reports the binary's size.
func BenchmarkSelfExeCopy(b *testing.B) {
	fi, err := os.Stat("/proc/self/exe")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	for i := 0; i < b.N; i++ {
		f, err := sealedCopy("/proc/self/exe")
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
}

// Both ways stepbox gives box processes its binary refuse a write from
// the host's root: the overlay with EROFS, the memfd copy by its seals;
// the overlay leaves nothing in the mount table nor in its scratch dir.
func TestStepboxsBinaryForBoxesCannotBeWritten(t *testing.T) {
	needRoot(t)
	before, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	scratch := t.TempDir()
	over, err := readOnlyOverlay("/proc/self/exe", scratch)
	if err != nil {
		t.Skipf("no overlay here (%v): box processes run the sealed copy", err)
	}
	defer over.Close()
	copied, err := sealedCopy("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer copied.Close()
	for _, f := range []*os.File{over, copied} {
		path := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
		// The copy opens for writing (seals refuse the write itself); the
		// overlay refuses the open.
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if f == over && !errors.Is(err, unix.EROFS) {
			t.Errorf("open %s for writing: %v, want EROFS", f.Name(), err)
		}
		if err == nil {
			if _, err := w.Write([]byte{0}); !errors.Is(err, unix.EPERM) {
				t.Errorf("write to %s: %v, want EPERM (F_SEAL_WRITE)", f.Name(), err)
			}
			w.Close()
		}
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(over.Fd()), &fs); err != nil || fs.Type != unix.OVERLAYFS_SUPER_MAGIC || fs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the overlay: filesystem %#x, flags %#x (%v), want a read-only overlayfs", fs.Type, fs.Flags, err)
	}
	if seals, err := unix.FcntlInt(copied.Fd(), unix.F_GET_SEALS, 0); err != nil || seals&selfExeSeals != selfExeSeals {
		t.Errorf("the copy's seals %#x (%v), want %#x", seals, err, selfExeSeals)
	}
	if after, _ := os.ReadFile("/proc/self/mountinfo"); !bytes.Equal(before, after) {
		t.Errorf("the overlay changed the mount table:\n%s\nthen\n%s", before, after)
	}
	if left, _ := os.ReadDir(scratch); len(left) > 0 {
		t.Errorf("the overlay left %d entries in its scratch dir", len(left))
	}
}
