package rootfs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
)

func TestMain(m *testing.M) {
	// Keep the main goroutine on the main thread, so no test's box thread
	// can be the main thread: /proc/self then always shows the host.
	runtime.LockOSThread()
	if name := os.Getenv(childEnv); name != "" {
		os.Exit(runChild(name))
	}
	os.Exit(m.Run())
}

// needRoot skips a test that needs root, unless STEPBOX_MUST_WORK=1.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("STEPBOX_MUST_WORK") == "1" {
		t.Fatal("needs root, and STEPBOX_MUST_WORK=1 forbids skipping")
	}
	t.Skip("needs root")
}

// hostMountsUnchanged fails t unless the host's mount table is
// byte-identical at the end of the test. It reads the calling thread's
// (/proc/thread-self): /proc/self is the thread group leader's, which a
// test goroutine that locked it and unshared may have left in its own
// mount namespace.
func hostMountsUnchanged(t testing.TB) {
	t.Helper()
	before, err := os.ReadFile("/proc/thread-self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		after, err := os.ReadFile("/proc/thread-self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("the host's mount table changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// testBox is a thread in its own mount namespace, as a box process's
// locked thread is: made a slave of the host's tree before anything is
// mounted. Its goroutine never unlocks the thread, so the runtime drops
// the thread, and the namespace with it, when the test ends (DESIGN.md,
// "Hard-won rules").
type testBox struct {
	work chan func()
	tid  int
}

func newTestBox(t testing.TB) *testBox {
	t.Helper()
	needRoot(t)
	b := &testBox{work: make(chan func())}
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		b.tid = unix.Gettid()
		if err := unix.Unshare(unix.CLONE_FS | unix.CLONE_NEWNS); err != nil {
			ready <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			ready <- fmt.Errorf("make / rslave: %w", err)
			return
		}
		ready <- nil
		for f := range b.work {
			f()
		}
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(b.work) })
	return b
}

// run runs fn on the box's thread.
func (b *testBox) run(fn func() error) error {
	errc := make(chan error)
	b.work <- func() { errc <- fn() }
	return <-errc
}

// mountinfo returns the box thread's mount table as the kernel prints it.
func (b *testBox) mountinfo(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/mountinfo", os.Getpid(), b.tid))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// writeTree creates files under dir: a path ending in / is a directory,
// "->target" makes a symlink, anything else is the file's content.
func writeTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasSuffix(p, "/"):
			err = os.MkdirAll(full, 0o755)
		case strings.HasPrefix(content, "->"):
			err = os.Symlink(content[2:], full)
		default:
			err = os.WriteFile(full, []byte(content), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// image is three layers like a small container image, plus the box dirs.
type image struct {
	layers              []rootfs.Layer
	upper, work, merged string
}

// newImage builds base, app and web layers under a temp dir. base holds
// a static busybox when the host has one, so commands run after
// pivot_root.
func newImage(t testing.TB) image {
	t.Helper()
	dir := t.TempDir()
	img := image{upper: filepath.Join(dir, "box/upper"), work: filepath.Join(dir, "box/work"), merged: filepath.Join(dir, "box/merged")}
	for _, l := range []struct {
		name  string
		files map[string]string
	}{
		{"base", map[string]string{
			"etc/hostname": "stepbox-image\n", "etc/motd": "base motd\n", "fileA": "A\n", "fileB": "B\n",
			"proc/": "", "sys/": "", "dev/": "", "tmp/": "", "bin/": "",
		}},
		{"app", map[string]string{"etc/motd": "app motd\n", "app/hello": "hello\n"}},
		{"web", map[string]string{"web/index.html": "<h1>hi</h1>\n", "etc/web.conf": "port 80\n"}},
	} {
		d := filepath.Join(dir, "layers", l.name)
		writeTree(t, d, l.files)
		img.layers = append(img.layers, rootfs.Layer{Name: l.name, Dir: d})
	}
	if bb, err := os.ReadFile("/bin/busybox"); err == nil {
		base := img.layers[0].Dir
		if err := os.WriteFile(filepath.Join(base, "bin/busybox"), bb, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, app := range []string{"sh", "ls", "cat", "mount"} {
			if err := os.Symlink("busybox", filepath.Join(base, "bin", app)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return img
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
