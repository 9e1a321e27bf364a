package rootfs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// mountImage mounts img's overlay in b and returns the step.
func mountImage(t *testing.T, b *testBox, img image) *step.Step {
	t.Helper()
	var st *step.Step
	if err := b.run(func() (err error) {
		st, err = rootfs.MountOverlay(rootfs.Local, img.layers, img.upper, img.work, img.merged)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestMountOverlayTopLayerShadowsLower(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	st := mountImage(t, b, img)

	err := b.run(func() error {
		if got := readFile(t, img.merged+"/etc/motd"); got != "app motd\n" {
			return fmt.Errorf("/etc/motd = %q, want app's, which is above base", got)
		}
		for _, p := range []string{"fileA", "app/hello", "web/index.html"} {
			if _, err := os.Stat(filepath.Join(img.merged, p)); err != nil {
				return fmt.Errorf("every layer shows through: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The record shows overlayfs's own order: top layer first.
	want := fmt.Sprintf("lowerdir=%s:%s:%s,upperdir=%s,workdir=%s", img.layers[2].Dir, img.layers[1].Dir, img.layers[0].Dir, img.upper, img.work)
	last := st.Calls[len(st.Calls)-1]
	if !strings.HasPrefix(last.Syscall, "mount(\"overlay\"") || !strings.Contains(last.Syscall, want) || last.Result != "0" {
		t.Errorf("last call = %s, want mount(2) of the overlay with %s", last, want)
	}
	if !strings.Contains(strings.Join(st.Shell, "\n"), "mount -t overlay overlay -o "+want) {
		t.Errorf("shell = %q", st.Shell)
	}
	if !strings.Contains(b.mountinfo(t), img.merged+" rw,relatime - overlay overlay rw,"+want) {
		t.Errorf("mountinfo does not show the overlay:\n%s", b.mountinfo(t))
	}
	if strings.Contains(readMountinfo(t), img.merged) {
		t.Errorf("the overlay shows in the host's mount table")
	}
}

func TestMountOverlayCopiesUpAndWhitesOut(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	mountImage(t, b, img)
	err := b.run(func() error {
		f, err := os.OpenFile(img.merged+"/etc/motd", os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteString("x\n"); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return os.Remove(img.merged + "/fileB")
	})
	if err != nil {
		t.Fatal(err)
	}
	// Read from the host's side: the layers are untouched, the upper dir
	// holds the copy-up and the whiteout.
	if got := readFile(t, img.upper+"/etc/motd"); got != "app motd\nx\n" {
		t.Errorf("upper /etc/motd = %q, want the copied-up, appended file", got)
	}
	if got := readFile(t, img.layers[1].Dir+"/etc/motd"); got != "app motd\n" {
		t.Errorf("app's /etc/motd changed to %q", got)
	}
	var st unix.Stat_t
	if err := unix.Lstat(img.upper+"/fileB", &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("upper /fileB is not a 0/0 whiteout: %+v %v", st, err)
	}
	if readFile(t, img.layers[0].Dir+"/fileB") != "B\n" {
		t.Errorf("base's fileB changed")
	}
	err = b.run(func() error {
		if _, err := os.Stat(img.merged + "/fileB"); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("deleted fileB still shows: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

func TestReadStackMatchesKernel(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	mountImage(t, b, img)
	var merged map[string]bool
	err := b.run(func() error {
		// The three changes of the issue: touch /test, rm /fileB, echo x >> /etc/motd.
		if err := os.WriteFile(img.merged+"/test", nil, 0o644); err != nil {
			return err
		}
		if err := os.Remove(img.merged + "/fileB"); err != nil {
			return err
		}
		f, err := os.OpenFile(img.merged+"/etc/motd", os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteString("x\n"); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		merged, err = walkPaths(img.merged)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := rootfs.ReadStack(img.layers, img.upper, img.merged, true)
	if err != nil {
		t.Fatal(err)
	}
	var changes []string
	for _, c := range snap.Changes {
		changes = append(changes, c.Kind.String()+" "+c.Path)
	}
	if want := []string{"~ /etc/motd", "- /fileB", "+ /test"}; strings.Join(changes, "\n") != strings.Join(want, "\n") {
		t.Errorf("changes = %q, want %q", changes, want)
	}
	// Every path the kernel shows, and only those, with the right origin.
	got := map[string]bool{}
	for _, o := range snap.Files {
		got[o.Path] = true
	}
	if d := setDiff(merged, got); d != "" {
		t.Errorf("ReadStack's merged view differs from the kernel's: %s", d)
	}
	origin := map[string]string{}
	for _, o := range snap.Files {
		origin[o.Path] = o.Layer
	}
	for p, want := range map[string]string{"/etc/motd": "upper", "/test": "upper", "/fileA": "base", "/app/hello": "app", "/web/index.html": "web", "/etc/web.conf": "web", "/etc/hostname": "base"} {
		if origin[p] != want {
			t.Errorf("origin of %s = %q, want %q", p, origin[p], want)
		}
	}
}

// walkPaths lists every path under dir, as the box sees them.
func walkPaths(dir string) (map[string]bool, error) {
	paths := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			paths[p[len(dir):]] = true
		}
		return nil
	})
	return paths, err
}

func setDiff(want, got map[string]bool) string {
	var out []string
	for p := range want {
		if !got[p] {
			out = append(out, "missing "+p)
		}
	}
	for p := range got {
		if !want[p] {
			out = append(out, "extra "+p)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

func TestTwoBoxesShareOneBase(t *testing.T) {
	web, db := newTestBox(t), newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	base := img.layers[:1]
	dir := t.TempDir()
	boxes := map[string]image{}
	for name, b := range map[string]*testBox{"web": web, "db": db} {
		bi := image{layers: base, upper: filepath.Join(dir, name, "upper"), work: filepath.Join(dir, name, "work"), merged: filepath.Join(dir, name, "merged")}
		mountImage(t, b, bi)
		boxes[name] = bi
	}
	if err := web.run(func() error { return os.WriteFile(boxes["web"].merged+"/test", []byte("web\n"), 0o644) }); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, boxes["web"].upper+"/test"); got != "web\n" {
		t.Errorf("web's upper /test = %q", got)
	}
	for _, p := range []string{boxes["db"].upper + "/test", base[0].Dir + "/test"} {
		if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists: a write in web reached it", p)
		}
	}
	err := db.run(func() error {
		if _, err := os.Stat(boxes["db"].merged + "/test"); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("db sees web's file: %v", err)
		}
		if _, err := os.Stat(boxes["web"].merged + "/test"); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("web's overlay is visible from db's mount namespace: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	if snap, err := rootfs.ReadStack(base, boxes["db"].upper, boxes["db"].merged, false); err != nil || len(snap.Changes) != 0 {
		t.Errorf("db's stack shows changes %v (%v)", snap.Changes, err)
	}
}

func TestMountOverlayOfHundredLayers(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	dir := t.TempDir()
	var layers []rootfs.Layer
	for i := range 100 {
		d := filepath.Join(dir, "layers", fmt.Sprintf("layer-%03d", i))
		writeTree(t, d, map[string]string{fmt.Sprintf("from/%03d", i): "", "who": fmt.Sprint(i)})
		layers = append(layers, rootfs.Layer{Name: fmt.Sprintf("l%03d", i), Dir: d})
	}
	img := image{layers: layers, upper: filepath.Join(dir, "upper"), work: filepath.Join(dir, "work"), merged: filepath.Join(dir, "merged")}
	var cwd string
	if err := b.run(func() (err error) { cwd, err = os.Getwd(); return err }); err != nil {
		t.Fatal(err)
	}
	st := mountImage(t, b, img)
	calls := fmt.Sprint(st.Calls)
	// Linux 6.8 takes the layers one by one (lowerdir+); before, they go
	// relative to their common directory, mounted from there.
	if kernelAtLeast(t, 6, 8) {
		if !strings.Contains(calls, `"lowerdir+", "`+layers[99].Dir) || !strings.Contains(calls, "FSCONFIG_CMD_CREATE") {
			t.Errorf("a 100-layer stack was not added layer by layer: %s", calls)
		}
	} else {
		layersDir := filepath.Join(dir, "layers")
		if !strings.Contains(calls, `chdir("`+layersDir+`") = 0`) || !strings.Contains(calls, `"lowerdir=layer-099:layer-098:`) || !strings.Contains(calls, "fchdir(") {
			t.Errorf("a 100-layer stack on Linux < 6.8 was not mounted relative to %s: %s", layersDir, calls)
		}
		if !strings.Contains(strings.Join(st.Shell, "\n"), "(cd "+layersDir+" && mount -t overlay") {
			t.Errorf("shell = %q, want the mount from the layers' directory", st.Shell)
		}
	}
	err := b.run(func() error {
		if now, err := os.Getwd(); err != nil || now != cwd {
			return fmt.Errorf("the box's working directory is %q (%v) after the mount, was %q", now, err, cwd)
		}
		if got := readFile(t, img.merged+"/who"); got != "99" {
			return fmt.Errorf("/who = %q, want the top layer's 99", got)
		}
		entries, err := os.ReadDir(img.merged + "/from")
		if err != nil || len(entries) != 100 {
			return fmt.Errorf("/from holds %d entries, want one per layer (%v)", len(entries), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := rootfs.ReadStack(layers, img.upper, img.merged, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range snap.Files {
		if o.Path == "/who" && o.Layer != "l099" {
			t.Errorf("origin of /who = %s, want the top layer", o.Layer)
		}
	}
}

func TestMountOverlayRefusesBadLayers(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	base, app := img.layers[0], img.layers[1]
	inside := rootfs.Layer{Name: "inner", Dir: filepath.Join(base.Dir, "etc")}
	for _, tc := range []struct {
		name   string
		layers []rootfs.Layer
		upper  string
		want   error
	}{
		{"layer listed twice", []rootfs.Layer{base, app, base}, img.upper, rootfs.ErrLayerTwice},
		{"one dir under two names", []rootfs.Layer{base, {Name: "again", Dir: base.Dir}}, img.upper, rootfs.ErrLayerTwice},
		{"layer inside layer", []rootfs.Layer{base, inside}, img.upper, rootfs.ErrDirsOverlap},
		{"upper inside a layer", []rootfs.Layer{base, app}, filepath.Join(app.Dir, "upper"), rootfs.ErrDirsOverlap},
		{"missing layer", []rootfs.Layer{{Name: "ghost", Dir: "/nonexistent/ghost"}}, img.upper, fs.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := b.mountinfo(t)
			err := b.run(func() error {
				_, err := rootfs.MountOverlay(rootfs.Local, tc.layers, tc.upper, img.work, img.merged)
				return err
			})
			if !errors.Is(err, tc.want) {
				t.Fatalf("MountOverlay = %v, want %v", err, tc.want)
			}
			if b.mountinfo(t) != before {
				t.Errorf("a refused overlay changed the box's mounts")
			}
			for _, d := range []string{tc.upper, img.work, img.merged} {
				if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a refused overlay left %s behind", d)
				}
			}
		})
	}
}

func TestMountOverlayRefusesUsedUpperDir(t *testing.T) {
	b := newTestBox(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	writeTree(t, img.upper, map[string]string{"leftover": "from another box"})
	err := b.run(func() error {
		_, err := rootfs.MountOverlay(rootfs.Local, img.layers, img.upper, img.work, img.merged)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "fresh upper") {
		t.Fatalf("MountOverlay over a used upper dir = %v", err)
	}
}

func TestMountBeforeUnshareIsRefused(t *testing.T) {
	needRoot(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	if _, err := rootfs.MountOverlay(rootfs.Local, img.layers, img.upper, img.work, img.merged); !errors.Is(err, rootfs.ErrHostMountNamespace) {
		t.Fatalf("MountOverlay in the host's namespace = %v", err)
	}
	if err := fmt.Sprint(rootfs.ErrHostMountNamespace); !strings.Contains(err, "run `unshare mnt` first") {
		t.Errorf("the error does not say what to do: %s", err)
	}
	for _, d := range []string{img.upper, img.work, img.merged} {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a refused overlay left %s behind", d)
		}
	}
}

// kernelAtLeast reads `uname -r` and compares its major.minor.
func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var ma, mi int
	if n, _ := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); n < 2 {
		t.Fatalf("uname -r %q: no major.minor", u.Release)
	}
	return ma > major || (ma == major && mi >= minor)
}

func readMountinfo(t *testing.T) string {
	t.Helper()
	return readFile(t, "/proc/thread-self/mountinfo") // the host's: see hostMountsUnchanged
}

func TestRootlessBoxUsesUserxattrAndBindsDevices(t *testing.T) {
	needRoot(t)
	hostMountsUnchanged(t)
	img := newImage(t)
	c := startChild(t, "rootless", childArgs{Layers: img.layers, Upper: img.upper, Work: img.work, Merged: img.merged},
		syscall.CLONE_NEWUSER|syscall.CLONE_NEWNS)
	rep := c.report(t)
	calls := strings.Join(rep.Calls, "\n")
	if !strings.Contains(calls, ",userxattr\") = 0") {
		t.Errorf("the overlay in a user namespace was mounted without userxattr:\n%s", calls)
	}
	if !strings.Contains(calls, "makedev(0x1, 0x3)) = -1 EPERM") || !strings.Contains(calls, `mount("/dev/null", "`+img.merged+`/dev/null", NULL, MS_BIND, NULL) = 0`) {
		t.Errorf("/dev/null was not bound from the host after mknod failed:\n%s", calls)
	}
	if got := strings.Join(rep.Changes, " "); got != "- /fileB" {
		t.Errorf("changes = %q, want the whiteout of /fileB", got)
	}
}
