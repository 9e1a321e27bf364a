package repl

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// asNobody runs argv as uid and gid 65534, no groups: another local user.
func asNobody(argv ...string) (string, error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// What a root box writes is no other user's to list or read, even where
// a box with a user namespace of its own opened the state dirs on the
// way (o+x) for its mapped root: only that box's overlay dir is its
// root's, and still closed to the rest.
func TestAnotherUserCannotListOrReadABoxsUpperDir(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new u --user", "unshare mnt", "mount overlay base", "pivot_root", "exec sh -c 'echo s3cret > /u.conf'",
		"new a", "unshare mnt", "mount overlay base", "pivot_root", "exec sh -c 'echo s3cret > /app.conf'")
	a, err := sh.Session.Box("a")
	if err != nil {
		t.Fatal(err)
	}
	u, err := sh.Session.Box("u")
	if err != nil {
		t.Fatal(err)
	}
	// The way to the boxes dir is open (box u's root needs it): what keeps
	// others out must be the boxes' own directories.
	if got, err := asNobody("stat", a.Dir); err != nil {
		t.Fatalf("as uid 65534, stat %s: %v: %s; the state dirs above it were to be searchable", a.Dir, err, got)
	}
	if fi, err := os.Stat(a.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("box a, which has no user namespace, has its dir %s %v (%v), want 0700", a.Dir, fi.Mode(), err)
	}
	for _, try := range [][]string{
		{"ls", "-A", a.FS().Upper},
		{"cat", filepath.Join(a.FS().Upper, "app.conf")},
		{"ls", "-A", a.FS().Merged},
		{"ls", "-A", u.FS().Upper},
		{"cat", filepath.Join(u.FS().Upper, "u.conf")},
	} {
		got, err := asNobody(try...)
		if err == nil || strings.Contains(got, "s3cret") {
			t.Errorf("as uid 65534, %s: %v\n%s", strings.Join(try, " "), err, got)
		} else if !strings.Contains(got, "Permission denied") {
			t.Errorf("as uid 65534, %s failed, but not with EACCES: %s", strings.Join(try, " "), got)
		}
	}
}
