package rootfs_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
)

// whiteout makes the 0/0 character device overlayfs uses for a deleted
// path; unprivileged since Linux 5.8 (commit a3c751a50fe6).
func whiteout(t testing.TB, p string) {
	t.Helper()
	if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
}

// opaque marks dir opaque the way an overlay mounted with userxattr does.
func opaque(t testing.TB, dir string) {
	t.Helper()
	if err := unix.Lsetxattr(dir, "user.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("user xattrs unsupported here: %v", err)
	}
}

func changeList(snap rootfs.StackSnapshot) string {
	var out []string
	for _, c := range snap.Changes {
		s := c.Kind.String() + " " + c.Path
		if c.Opaque {
			s += " (opaque)"
		}
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}

func originList(snap rootfs.StackSnapshot) string {
	var out []string
	for _, o := range snap.Files {
		out = append(out, o.Path+" "+o.Layer)
	}
	return strings.Join(out, "\n")
}

func TestReadStackMarksCreatedCopiedUpAndWhiteouts(t *testing.T) {
	dir := t.TempDir()
	base, upper := filepath.Join(dir, "base"), filepath.Join(dir, "upper")
	writeTree(t, base, map[string]string{"etc/motd": "hi", "etc/passwd": "root", "fileB": "B", "var/log/syslog": "log", "usr/bin/ls": "ls"})
	writeTree(t, upper, map[string]string{"etc/motd": "hi\nx", "test": "", "newdir/file": "new", "var/log/": ""})
	whiteout(t, filepath.Join(upper, "fileB"))
	whiteout(t, filepath.Join(upper, "var/log/syslog"))
	layers := []rootfs.Layer{{Name: "base", Dir: base}}
	snap, err := rootfs.ReadStack(layers, upper, "/box/merged", true)
	if err != nil {
		t.Fatal(err)
	}
	want := "~ /etc/motd\n- /fileB\n+ /newdir\n+ /newdir/file\n+ /test\n- /var/log/syslog"
	if got := changeList(snap); got != want {
		t.Errorf("changes:\n%s\nwant:\n%s", got, want)
	}
	for _, c := range snap.Changes {
		if want := map[rootfs.ChangeKind]string{rootfs.Created: "", rootfs.CopiedUp: "base", rootfs.Whiteout: "base"}[c.Kind]; c.Below != want {
			t.Errorf("%s %s: below = %q, want %q", c.Kind, c.Path, c.Below, want)
		}
	}
	if snap.Upper.Whiteouts != 2 || snap.Lowers[0].Files != 5 {
		t.Errorf("counts: upper %+v, base %+v", snap.Upper, snap.Lowers[0])
	}
	origins := originList(snap)
	for _, line := range []string{"/etc upper", "/etc/motd upper", "/etc/passwd base", "/usr/bin/ls base", "/var/log upper"} {
		if !strings.Contains(origins+"\n", line+"\n") {
			t.Errorf("origins lack %q:\n%s", line, origins)
		}
	}
	for _, gone := range []string{"/fileB ", "/var/log/syslog "} {
		if strings.Contains(origins+"\n", gone) {
			t.Errorf("a whiteout did not hide %s:\n%s", gone, origins)
		}
	}
}

func TestReadStackOriginsHonourWhiteoutsAndOpaqueDirs(t *testing.T) {
	dir := t.TempDir()
	base, app, web, upper := filepath.Join(dir, "base"), filepath.Join(dir, "app"), filepath.Join(dir, "web"), filepath.Join(dir, "upper")
	writeTree(t, base, map[string]string{"etc/motd": "base", "etc/issue": "base", "opt/tool/a": "a", "opt/tool/b": "b", "srv/data/x": "x", "lib": "file in base"})
	writeTree(t, app, map[string]string{"etc/motd": "app", "opt/tool/": "", "opt/tool/c": "c", "lib/": "", "lib/libc.so": "so"})
	writeTree(t, web, map[string]string{"etc/": "", "srv/": ""})
	opaque(t, filepath.Join(app, "opt/tool")) // app replaced /opt/tool
	whiteout(t, filepath.Join(web, "etc/issue"))
	whiteout(t, filepath.Join(web, "srv/data"))
	writeTree(t, upper, map[string]string{"opt/tool/": "", "opt/tool/d": "d"})
	opaque(t, filepath.Join(upper, "opt/tool")) // the box did rm -rf /opt/tool; mkdir /opt/tool
	layers := []rootfs.Layer{{Name: "base", Dir: base}, {Name: "app", Dir: app}, {Name: "web", Dir: web}}
	snap, err := rootfs.ReadStack(layers, upper, "/m", true)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"/etc web", "/etc/motd app",
		"/lib app", "/lib/libc.so app",
		"/opt upper", "/opt/tool upper", "/opt/tool/d upper",
		"/srv web",
	}, "\n")
	if got := originList(snap); got != want {
		t.Errorf("origins:\n%s\nwant:\n%s", got, want)
	}
	if got := changeList(snap); got != "~ /opt/tool (opaque)\n+ /opt/tool/d" {
		t.Errorf("changes:\n%s", got)
	}
}

func TestReadStackWithoutFilesListsNoOrigins(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir+"/base", map[string]string{"a": "a"})
	writeTree(t, dir+"/upper", map[string]string{"b": "b"})
	snap, err := rootfs.ReadStack([]rootfs.Layer{{Name: "base", Dir: dir + "/base"}}, dir+"/upper", "/m", false)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Files != nil || changeList(snap) != "+ /b" {
		t.Errorf("snapshot %+v", snap)
	}
}

// thousandFiles is a base of 1,200 files in 60 dirs and a few changes.
func thousandFiles(t testing.TB) ([]rootfs.Layer, string) {
	dir := t.TempDir()
	files := map[string]string{}
	for d := range 60 {
		for f := range 20 {
			files[fmt.Sprintf("usr/share/d%02d/f%02d", d, f)] = "x"
		}
	}
	writeTree(t, dir+"/base", files)
	writeTree(t, dir+"/app", map[string]string{"app/run": "run", "usr/share/d00/f00": "app"})
	writeTree(t, dir+"/upper", map[string]string{"test": "", "usr/share/d01/f01": "changed", "usr/share/d02/": ""})
	whiteout(t, dir+"/upper/usr/share/d02/f02")
	return []rootfs.Layer{{Name: "base", Dir: dir + "/base"}, {Name: "app", Dir: dir + "/app"}}, dir + "/upper"
}

// Speed is measured by BenchmarkReadStackFiles1000, never asserted as a
// time here (CI machines are shared and emulated); what cannot flake is
// the work per file: a few allocations each, so a stack twice as big
// costs twice as much, not four times.
func TestReadStackOfThousandFilesAllocatesAFewTimesPerFile(t *testing.T) {
	layers, upper := thousandFiles(t)
	snap, err := rootfs.ReadStack(layers, upper, "/m", true)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Lowers[0].Files != 1200 || len(snap.Changes) != 3 {
		t.Fatalf("base %+v, changes %v", snap.Lowers[0], snap.Changes)
	}
	allocs := testing.AllocsPerRun(3, func() {
		if _, err := rootfs.ReadStack(layers, upper, "/m", true); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("stack --files of 1,200 files: %.0f allocations", allocs)
	if per := allocs / float64(len(snap.Files)); per > 10 {
		t.Errorf("ReadStack made %.0f allocations for %d paths, %.1f each; want at most 10 each", allocs, len(snap.Files), per)
	}
}
