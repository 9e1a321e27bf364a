package outfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the other user's files are made with chown")
	}
}

// sharedDir is a directory like /tmp: mode 1777, with victim, a file of
// the caller's outside it.
func sharedDir(t *testing.T) (dir, victim string) {
	t.Helper()
	top := t.TempDir()
	dir, victim = filepath.Join(top, "tmp"), filepath.Join(top, "victim")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("root's own\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, victim
}

// plant makes name in dir as the other user would: a symlink or a
// world-writable file, owned by nobody.
func plant(t *testing.T, path, symlinkTo string) {
	t.Helper()
	if symlinkTo != "" {
		if err := os.Symlink(symlinkTo, path); err != nil {
			t.Fatal(err)
		}
	} else if err := os.WriteFile(path, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
}

func victimUnchanged(t *testing.T, victim string) {
	t.Helper()
	if b, err := os.ReadFile(victim); err != nil || string(b) != "root's own\n" {
		t.Errorf("the victim file was written through the planted path: %q, %v", b, err)
	}
}

// In a sticky directory others write (/tmp), a symlink or a file another
// user planted at the name is refused, and nothing is written through it.
func TestWriteRefusesWhatAnotherUserPlantedInASharedDir(t *testing.T) {
	needRoot(t)
	dir, victim := sharedDir(t)
	link, reg := filepath.Join(dir, "a.sh"), filepath.Join(dir, "reg.sh")
	plant(t, link, victim)
	plant(t, reg, "")
	for _, p := range []string{link, reg} {
		err := Write(p, []byte("#!/bin/sh\n"), 0o700)
		if err == nil || !strings.Contains(err.Error(), "in a directory other users can write") || !strings.Contains(err.Error(), Allowed) {
			t.Errorf("Write(%s) = %v; want a refusal saying what is allowed", p, err)
		}
	}
	victimUnchanged(t, victim)
	var st unix.Stat_t
	if err := unix.Lstat(reg, &st); err != nil || st.Uid != nobody || st.Size != 0 {
		t.Errorf("the other user's file changed: uid %d size %d, %v", st.Uid, st.Size, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*stepbox-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// In a sticky directory a new name is written, with exactly the mode
// asked whatever the umask, and owned by the caller.
func TestWriteMakesANewFileInAStickyDirWithTheModeAsked(t *testing.T) {
	needRoot(t)
	dir, _ := sharedDir(t)
	old := unix.Umask(0o077)
	defer unix.Umask(old)
	p := filepath.Join(dir, "demo.tar")
	if err := Write(p, []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != unix.S_IFREG|0o644 || st.Uid != 0 {
		t.Errorf("mode %o uid %d; want a regular file 0644 of root's", st.Mode, st.Uid)
	}
	// Again: the caller's own file is replaced.
	if err := Write(p, []byte("again"), 0o644); err != nil {
		t.Errorf("rewriting the caller's own file in a sticky dir: %v", err)
	}
}

// In the caller's own directory a symlink at the name is replaced by the
// new file, never followed.
func TestWriteReplacesASymlinkInsteadOfFollowingIt(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("root's own\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "saved.sb")
	if err := os.Symlink(victim, p); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	victimUnchanged(t, victim)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("%s is %v, %v; want the new regular file", p, fi.Mode(), err)
	}
}

// A directory another user owns, or one others can write that is not
// sticky, is refused; so is a symlinked directory another user owns.
func TestWriteRefusesADirectoryAnotherUserControls(t *testing.T) {
	needRoot(t)
	top := t.TempDir()
	owned, open, link := filepath.Join(top, "owned"), filepath.Join(top, "open"), filepath.Join(top, "link")
	for _, d := range []string{owned, open} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(owned, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	plant(t, link, top)
	for _, p := range []string{filepath.Join(owned, "f"), filepath.Join(open, "f"), filepath.Join(link, "f")} {
		if err := Write(p, []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), Allowed) {
			t.Errorf("Write(%s) = %v; want a refusal saying what is allowed", p, err)
		}
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s was written", p)
		}
	}
	if _, err := Mkdir(filepath.Join(owned, "bundle")); err == nil {
		t.Errorf("Mkdir in a directory of another user's: no error")
	}
}
