package primitives

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// sharedTmp makes a directory like /tmp: root's, mode 1777.
func sharedTmp(t *testing.T) string {
	t.Helper()
	tmp := filepath.Join(t.TempDir(), "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(tmp, 0o1777); err != nil {
		t.Fatal(err)
	}
	return tmp
}

// TestStateDirThroughAnotherUsersSymlinkIsRefused: uid 65534 owns a
// symlink in a shared sticky directory that names root's own 0700 state
// dir. Its owner can point it elsewhere whenever they like, so the
// session refuses it, says why, and makes nothing where it points.
func TestStateDirThroughAnotherUsersSymlinkIsRefused(t *testing.T) {
	needRoot(t)
	tmp := sharedTmp(t)
	mine := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(mine, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(tmp, "sd")
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	dirs, err := DefaultDirs(link)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSession(dirs)
	if err == nil {
		s.Close()
		t.Fatalf("OpenSession(%+v) took a state dir through uid 65534's symlink", dirs)
	}
	for _, want := range []string{"state dir " + dirs.Run, link + " is a symlink of uid 65534", "give the directory itself"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal %q does not say %q", err, want)
		}
	}
	if ents, _ := os.ReadDir(mine); len(ents) != 0 {
		t.Errorf("the refused session made %d entries in %s", len(ents), mine)
	}
	if _, err := Sweep(dirs); err == nil {
		t.Errorf("Sweep(%+v) acted through uid 65534's symlink", dirs)
	}
	// The same symlink, root's: taken, as the directory it names.
	if err := os.Lchown(link, 0, 0); err != nil {
		t.Fatal(err)
	}
	s, err = OpenSession(dirs)
	if err != nil {
		t.Fatalf("a state dir through root's own symlink was refused: %v", err)
	}
	defer s.Close()
	if want := filepath.Join(mine, "run"); s.Dirs.Run != want {
		t.Errorf("the session keeps its state in %s, want the real %s", s.Dirs.Run, want)
	}
}

// TestSwappedStateDirSymlinkDoesNotRedirectTheSession: the session
// resolves its state dir once. A symlink on the way pointed elsewhere
// after start-up changes neither where it keeps its state nor what its
// teardown removes.
func TestSwappedStateDirSymlinkDoesNotRedirectTheSession(t *testing.T) {
	needRoot(t)
	tmp := sharedTmp(t)
	first, other := filepath.Join(t.TempDir(), "first"), filepath.Join(t.TempDir(), "other")
	for _, d := range []string{first, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(tmp, "sd")
	if err := os.Symlink(first, link); err != nil {
		t.Fatal(err)
	}
	dirs, err := DefaultDirs(link)
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSession(dirs)
	if err != nil {
		t.Fatal(err)
	}
	sessionDir := s.Dir
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	// What every store and box opens: a path under the session's dirs.
	for _, d := range []string{filepath.Join(s.Dirs.Lib, "layers"), filepath.Join(s.Dir, "boxes", "x")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(other); len(ents) != 0 {
		t.Errorf("after the swap the session wrote %d entries into %s, where the symlink points now", len(ents), other)
	}
	if !strings.HasPrefix(sessionDir, first+"/") {
		t.Errorf("the session's dir is %s, not under the real %s", sessionDir, first)
	}
	if _, err := os.Stat(filepath.Join(first, "lib", "layers")); err != nil {
		t.Errorf("the layer store is not in the state dir resolved at start-up: %v", err)
	}
	if _, err := os.Stat(filepath.Join(first, "run", "sessions", s.ID)); err == nil {
		t.Errorf("teardown left the session's dir in %s", first)
	}
}
