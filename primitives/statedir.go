package primitives

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// stepbox acts on what its state dir says: the sweep kills the processes,
// removes the directories and cgroups a ledger names. So a state dir is
// used only when no one else can have written it, the rule sshd applies to
// ~/.ssh (StrictModes, secure_path() in OpenSSH's misc.c): the directory
// is the caller's and writable by no one else, and every directory above
// it belongs to root or the caller and is writable by no one else, unless
// it is sticky (as /tmp is: others there cannot rename or remove what is
// not theirs).

// DefaultDirs returns the state directories: $STEPBOX_STATE_DIR (or the
// --state-dir flag, passed as stateDir) holds both when set; otherwise
// /run/stepbox and /var/lib/stepbox for root, and for anyone else
// $XDG_RUNTIME_DIR/stepbox or, without one, ~/.local/state/stepbox: never
// a predictable name in a directory others share, such as /tmp.
func DefaultDirs(stateDir string) (Dirs, error) {
	if stateDir == "" {
		stateDir = os.Getenv("STEPBOX_STATE_DIR")
	}
	if stateDir != "" {
		return Dirs{Run: filepath.Join(stateDir, "run"), Lib: filepath.Join(stateDir, "lib")}, nil
	}
	if os.Geteuid() == 0 {
		return Dirs{Run: "/run/stepbox", Lib: "/var/lib/stepbox"}, nil
	}
	base := os.Getenv("XDG_RUNTIME_DIR")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return Dirs{}, fmt.Errorf("state dir: no $XDG_RUNTIME_DIR and no home directory (%w); give one of your own with --state-dir", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return Dirs{Run: filepath.Join(base, "stepbox", "run"), Lib: filepath.Join(base, "stepbox", "lib")}, nil
}

// makeTrusted creates the state directories (mode 0700), checks that they
// can be trusted, and returns them resolved: the session uses those real
// paths from then on, so no symlink on the way is followed again (and a
// swapped one changes nothing), and every directory on them is one that
// no one else can rename or replace.
func (d Dirs) makeTrusted() (Dirs, error) {
	return d.resolve(true)
}

// checkTrusted checks the state directories that exist, and returns them
// resolved; one that does not exist holds nothing to act on and is
// returned as given.
func (d Dirs) checkTrusted() (Dirs, error) {
	return d.resolve(false)
}

func (d Dirs) resolve(create bool) (Dirs, error) {
	out := d
	for _, dir := range []*string{&out.Run, &out.Lib} {
		real, err := trustedDir(*dir, create)
		if !create && errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return d, err
		}
		*dir = real
	}
	return out, nil
}

// maxLinks is how many symlinks resolving a state dir follows, the
// kernel's own bound (MAXSYMLINKS, path_resolution(7)).
const maxLinks = 40

// trustedDir resolves dir one component at a time, as the kernel would,
// and refuses it unless every directory it passes through passes the
// StrictModes rule (see the top of this file), every symlink on the way
// is the caller's or root's, and the directory it ends at is the
// caller's. With create it makes what is missing (mode 0700), each only
// inside a directory already checked. It returns the real path.
//
// Another user's symlink is refused even in a sticky directory (/tmp):
// its owner can point it elsewhere at any time, so the directory it
// names today says nothing about the one it names tomorrow.
func trustedDir(dir string, create bool) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("state dir %s: %w", dir, err)
	}
	uid := uint32(os.Geteuid())
	refuse := func(p, why string) error {
		return fmt.Errorf("state dir %s: %s %s; stepbox acts on the ledgers it keeps there, so it refuses a directory someone else could have written or redirected (as sshd refuses such a ~/.ssh): use --state-dir with a directory of your own, mode 0700", dir, p, why)
	}
	var st unix.Stat_t
	if err := unix.Lstat("/", &st); err != nil {
		return "", fmt.Errorf("state dir %s: lstat /: %w", dir, err)
	}
	if why := untrusted(st, uid, false); why != "" {
		return "", refuse("/", why)
	}
	cur, todo, links := "/", strings.Split(abs, "/"), 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur) // cur is real: its parent is checked already
			continue
		}
		p := filepath.Join(cur, name)
		err := unix.Lstat(p, &st)
		if errors.Is(err, unix.ENOENT) && create {
			if err := unix.Mkdir(p, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return "", fmt.Errorf("state dir %s: mkdir %s: %w", dir, p, err)
			}
			err = unix.Lstat(p, &st)
		}
		if err != nil {
			return "", fmt.Errorf("state dir %s: lstat %s: %w", dir, p, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if st.Uid != uid && st.Uid != 0 {
				return "", refuse(p, fmt.Sprintf("is a symlink of uid %d, neither yours (uid %d) nor root's: its owner can point it at another directory at any time, mid-session too; give the directory itself", st.Uid, uid))
			}
			if links++; links > maxLinks {
				return "", fmt.Errorf("state dir %s: more than %d symlinks on the way: %w", dir, maxLinks, unix.ELOOP)
			}
			target, err := os.Readlink(p)
			if err != nil {
				return "", fmt.Errorf("state dir %s: readlink %s: %w", dir, p, err)
			}
			if filepath.IsAbs(target) {
				cur = "/"
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		}
		// Checked as a directory above the state dir; the one the path
		// ends at is checked again as the state dir itself below.
		if why := untrusted(st, uid, false); why != "" {
			return "", refuse(p, why)
		}
		cur = p
	}
	if err := unix.Lstat(cur, &st); err != nil {
		return "", fmt.Errorf("state dir %s: lstat %s: %w", dir, cur, err)
	}
	if why := untrusted(st, uid, true); why != "" {
		return "", refuse(cur, why)
	}
	return cur, nil
}

// untrusted says what is wrong with a directory on the state dir's path,
// or "". The state dir itself (self) must be the caller's and never
// writable by others; a directory above it may also be root's, and
// writable by others when sticky.
func untrusted(st unix.Stat_t, uid uint32, self bool) string {
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "is not a directory"
	}
	switch {
	case self && st.Uid != uid:
		return fmt.Sprintf("belongs to uid %d, not to you (uid %d)", st.Uid, uid)
	case !self && st.Uid != uid && st.Uid != 0:
		return fmt.Sprintf("belongs to uid %d, neither to you (uid %d) nor to root", st.Uid, uid)
	}
	writable := st.Mode & (unix.S_IWGRP | unix.S_IWOTH)
	if writable == 0 || !self && st.Mode&unix.S_ISVTX != 0 {
		return ""
	}
	who := []string{}
	if st.Mode&unix.S_IWGRP != 0 {
		who = append(who, fmt.Sprintf("its group (gid %d)", st.Gid))
	}
	if st.Mode&unix.S_IWOTH != 0 {
		who = append(who, "everyone")
	}
	return fmt.Sprintf("is writable by %s (mode %04o)", strings.Join(who, " and "), st.Mode&0o7777)
}

// ownedState refuses a directory (dir) or a ledger file that stepbox
// reads state from under the state dir, path, unless it is the caller's
// and writable by no one else, as the state dir itself must be: sshd
// checks each component so, and a state dir of the caller's says nothing
// of a sessions/ or a ledger another user owns or may write in it (ut30
// F2: root's cleanup undid a ledger uid 1001 wrote). path is not
// followed: a symlink is refused. A path that does not exist holds
// nothing to act on: nil.
func ownedState(path string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("state dir: lstat %s: %w", path, err)
	}
	return ownedStat(path, st, dir)
}

// ownedStat is ownedState for what path's stat (or fstat) found.
func ownedStat(path string, st unix.Stat_t, dir bool) error {
	uid := uint32(os.Geteuid())
	why := ""
	if !dir && st.Mode&unix.S_IFMT != unix.S_IFREG {
		why = "is not a regular file"
	} else {
		if !dir {
			// Judged by its owner and mode as the state dir is.
			st.Mode = st.Mode&^unix.S_IFMT | unix.S_IFDIR
		}
		why = untrusted(st, uid, true)
	}
	if why == "" {
		return nil
	}
	return fmt.Errorf("state dir: %s %s; stepbox acts on the ledgers it keeps there, so it refuses, and leaves alone, what someone else could have written (as sshd checks each directory on the way to ~/.ssh): remove it, or give it to uid %d with mode 0700 (0600 for a file)", path, why, uid)
}

// ownedSession checks a dead session's directories before the sweep
// reads them: its own, boxes/ and each box's (ownedState).
func ownedSession(dir string, boxes []fs.DirEntry) []error {
	paths := []string{dir, filepath.Join(dir, "boxes")}
	for _, b := range boxes {
		paths = append(paths, filepath.Join(dir, "boxes", b.Name()))
	}
	var errs []error
	for _, p := range paths {
		if err := ownedState(p, true); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}
