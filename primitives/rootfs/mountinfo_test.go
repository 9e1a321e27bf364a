package rootfs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stepbox/primitives/rootfs"
)

// fixtureProc writes lines as the mountinfo of PID 4242 under a proc
// tree of the test's own.
func fixtureProc(t *testing.T, lines []string) string {
	t.Helper()
	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "4242"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(proc, "4242", "mountinfo"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return proc
}

func tmpfsLines(n int) []string {
	lines := []string{"100 1 0:40 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w"}
	for i := range n {
		lines = append(lines, fmt.Sprintf("%d 100 0:%d / /mnt rw,relatime - tmpfs t rw,size=1024k", 101+i, 41+i))
	}
	return lines
}

// A table of 5,000 mounts keeps the first rootfs.MountsKept and counts
// every one; a diff streamed from it counts every added mount and keeps
// rootfs.MountDiffKept.
func TestMountsInKeepsTheFirstMountsAndCountsEveryOne(t *testing.T) {
	const n = 5000
	proc := fixtureProc(t, tmpfsLines(n))
	tbl, err := rootfs.MountsIn(proc, 4242)
	if err != nil {
		t.Fatal(err)
	}
	if len(tbl.Mounts) != rootfs.MountsKept || tbl.Count() != n+1 {
		t.Fatalf("kept %d mounts and counted %d, want %d and %d", len(tbl.Mounts), tbl.Count(), rootfs.MountsKept, n+1)
	}
	if m := tbl.Mounts[1]; m.Point != "/mnt" || m.FSType != "tmpfs" || m.Options != "rw,relatime" || m.Super != "rw,size=1024k" || m.Propagation != "private" {
		t.Errorf("second mount = %+v", m)
	}
	if tbl.Mounts[0].Propagation != "shared:1" || tbl.Mounts[0].Super != "rw,lowerdir=/l,upperdir=/u,workdir=/w" {
		t.Errorf("root mount = %+v", tbl.Mounts[0])
	}
	host := rootfs.MountTable{Mounts: []rootfs.Mount{{Point: "/", FSType: "ext4", Source: "/dev/vda", Dev: "254:0", Root: "/", Options: "rw", Propagation: "shared:1"}}}
	d, err := rootfs.DiffMountsOf(context.Background(), host, proc, 4242)
	if err != nil {
		t.Fatal(err)
	}
	if d.AddedCount != n || len(d.Added) != rootfs.MountDiffKept || d.ChangedCount != 1 || d.RemovedCount != 0 {
		t.Errorf("diff counted %d added (kept %d), %d changed, %d removed; want %d (kept %d), 1, 0", d.AddedCount, len(d.Added), d.ChangedCount, d.RemovedCount, n, rootfs.MountDiffKept)
	}
}

// A line that is not mountinfo's is an error naming its line number,
// cut to a readable length.
func TestScanMountsNamesAMalformedLine(t *testing.T) {
	lines := tmpfsLines(3)
	lines[2] = "102 100 0:42 / /" + strings.Repeat("x", 5000) + " rw"
	err := rootfs.ScanMounts(context.Background(), fixtureProc(t, lines), 4242, func(rootfs.Mount) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "line 3:") || len(err.Error()) > 600 {
		t.Errorf("a malformed line 3 gave %v", err)
	}
	stop := errors.New("enough")
	n := 0
	err = rootfs.ScanMounts(context.Background(), fixtureProc(t, tmpfsLines(10)), 4242, func(rootfs.Mount) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("ScanMounts went on after its callback stopped it: %d mounts, %v", n, err)
	}
}

// Every field a box chooses comes back as the bytes it gave: the
// kernel's octal escapes (seq_escape: space, tab, newline, backslash, and
// comma in an option's value) decoded, a raw ESC kept, a backslash not
// followed by three octal digits left as it is.
func TestScanMountsDecodesTheKernelsOctalEscapes(t *testing.T) {
	proc := fixtureProc(t, []string{
		"101 100 0:41 /sub\\040dir /mnt/p\\040q\\011r rw,relatime - tmp\\040fs a\\040b\\011c\x1bd\\012e\\134f\\9 rw,size=1024k,x=a\\054b",
	})
	var got []rootfs.Mount
	if err := rootfs.ScanMounts(context.Background(), proc, 4242, func(m rootfs.Mount) error { got = append(got, m); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("%d mounts, want 1", len(got))
	}
	m := got[0]
	for _, f := range []struct{ name, got, want string }{
		{"root", m.Root, "/sub dir"},
		{"mount point", m.Point, "/mnt/p q\tr"},
		{"fstype", m.FSType, "tmp fs"},
		{"source", m.Source, "a b\tc\x1bd\ne\\f\\9"},
		{"superblock options", m.Super, "rw,size=1024k,x=a,b"},
	} {
		if f.got != f.want {
			t.Errorf("%s: %q, want %q", f.name, f.got, f.want)
		}
	}
}
