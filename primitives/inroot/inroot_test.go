package inroot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// tree makes root with the files of files (name → content; content
// "->X" makes a symlink to X), and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(body, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(body), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// An absolute symlink, and one that climbs with ../, resolve inside the
// root as they would inside the box: the host's file of that name is
// never read.
func TestReadFileResolvesSymlinksInsideTheRoot(t *testing.T) {
	host := tree(t, map[string]string{"secret": "host's\n"})
	secret := filepath.Join(host, "secret")
	root := tree(t, map[string]string{
		"etc/passwd":                    "->" + secret,
		strings.TrimPrefix(secret, "/"): "the image's\n",
		"etc/group":                     "->../../../../../../../../.." + secret,
		"etc/zero":                      "->/dev/zero",
	})
	for _, name := range []string{"etc/passwd", "/etc/group"} {
		b, err := ReadFile(root, name, 1<<20)
		if err != nil || string(b) != "the image's\n" {
			t.Errorf("ReadFile(%s) = %q, %v; want the image's own file", name, b, err)
		}
	}
	if b, err := ReadFile(root, "etc/zero", 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a symlink to /dev/zero read %d bytes, %v; want the box's /dev/zero, which this root lacks", len(b), err)
	}
}

// A FIFO, a device and a directory are refused at once, without
// blocking (no writer ever opens the FIFO); a file over the cap is
// refused, not read whole.
func TestReadFileRefusesAnythingButARegularFileOfBoundedSize(t *testing.T) {
	root := tree(t, map[string]string{"big": strings.Repeat("x", 5000), "dir/x": ""})
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mknod(filepath.Join(root, "zero"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"fifo", "zero", "dir"} {
		if os.Geteuid() != 0 && name == "zero" {
			continue
		}
		if _, err := ReadFile(root, name, 1<<20); !errors.Is(err, ErrNotRegular) {
			t.Errorf("ReadFile(%s): %v, want %v", name, err, ErrNotRegular)
		}
	}
	if _, err := ReadFile(root, "big", 4096); err == nil || !strings.Contains(err.Error(), "bigger than 4096 bytes") {
		t.Errorf("ReadFile of 5000 bytes with a cap of 4096: %v", err)
	}
}

// On a kernel without openat2 a plain path still reads, and a symlink on
// the way is refused, saying why, rather than followed on the host.
func TestReadFileWithoutOpenat2RefusesSymlinks(t *testing.T) {
	defer func(f func(int, string, *unix.OpenHow) (int, error)) { openat2 = f }(openat2)
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, syscall.ENOSYS }
	root := tree(t, map[string]string{"etc/passwd": "root:x:0:0::/:/bin/sh\n", "link/passwd": "x", "etc2": "->etc"})
	if os.Remove(filepath.Join(root, "link/passwd")) != nil || os.Remove(filepath.Join(root, "link")) != nil || os.Symlink("/etc", filepath.Join(root, "link")) != nil {
		t.Fatal("setup")
	}
	if b, err := ReadFile(root, "etc/passwd", 1<<20); err != nil || !strings.HasPrefix(string(b), "root:") {
		t.Errorf("plain path: %q, %v", b, err)
	}
	for _, name := range []string{"link/passwd", "etc2/passwd"} {
		if _, err := ReadFile(root, name, 1<<20); err == nil || !strings.Contains(err.Error(), "no openat2") {
			t.Errorf("ReadFile(%s) through a symlink without openat2: %v", name, err)
		}
	}
}

// A directory nested past the depth limit, and past PATH_MAX, is left
// out and counted; the walk itself does not fail, and stops at the
// entry limit.
func TestWalkLeavesOutWhatIsTooDeepOrTooMany(t *testing.T) {
	root := t.TempDir()
	fd, err := unix.Open(root, unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 60)
	for i := 0; i < 100; i++ { // 6,100 characters: past PATH_MAX
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			t.Fatal(err)
		}
		fd = next
	}
	unix.Close(fd)
	n := 0
	skipped, err := Walk(root, Limits{Depth: 1000, Entries: 1000}, func(string, os.DirEntry, error) error { n++; return nil })
	if err != nil || skipped.Unread == 0 || !strings.Contains(skipped.String(), "unreadable") {
		t.Errorf("past PATH_MAX: %v, %+v", err, skipped)
	}
	skipped, err = Walk(root, Limits{Depth: 10, Entries: 1000}, func(string, os.DirEntry, error) error { return nil })
	if err != nil || skipped.Deep != 1 || !strings.Contains(skipped.String(), "too deep") {
		t.Errorf("depth 10: %v, %+v", err, skipped)
	}
	skipped, err = Walk(root, Limits{Depth: 1000, Entries: 5}, func(string, os.DirEntry, error) error { return nil })
	if err != nil || !skipped.Many || !strings.Contains(skipped.String(), "too many") {
		t.Errorf("5 entries: %v, %+v", err, skipped)
	}
	if len(skipped.String()) > 300 {
		t.Errorf("the note names the deep path whole: %d characters", len(skipped.String()))
	}
}

// Stat, Lstat, Readlink and ReadDir resolve inside the root too: a
// directory the box made a symlink to a host directory lists, and stats,
// the box's own (here: nothing), never the host's.
func TestStatAndReadDirResolveInsideTheRoot(t *testing.T) {
	host := tree(t, map[string]string{"bin/hosttool": "#!/bin/sh\n"})
	root := tree(t, map[string]string{"bin": "->" + filepath.Join(host, "bin"), "usr/bin/tool": "x", "sbin": "->usr/bin"})
	if _, err := Stat(root, "/bin/hosttool"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat through an absolute symlink reached the host: %v", err)
	}
	if ents, err := ReadDir(root, "/bin", 100); !errors.Is(err, os.ErrNotExist) || len(ents) != 0 {
		t.Errorf("ReadDir through an absolute symlink listed %v, %v", ents, err)
	}
	if ents, err := ReadDir(root, "/sbin", 100); err != nil || len(ents) != 1 || ents[0].Name() != "tool" {
		t.Errorf("ReadDir through a relative symlink inside: %v, %v", ents, err)
	}
	if st, err := Lstat(root, "/sbin"); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("Lstat followed the symlink: %o, %v", st.Mode, err)
	}
	if st, err := Stat(root, "/sbin/tool"); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("Stat /sbin/tool: %o, %v", st.Mode, err)
	}
	if l, err := Readlink(root, "/sbin"); err != nil || l != "usr/bin" {
		t.Errorf("Readlink /sbin = %q, %v", l, err)
	}
	if _, err := Lstat(root, "/bin/hosttool"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lstat through an absolute symlink reached the host: %v", err)
	}
}
