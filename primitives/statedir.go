package primitives

import (
	"errors"
	"fmt"
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

// makeTrusted creates the state directories (mode 0700) and checks that
// they can be trusted.
func (d Dirs) makeTrusted() error {
	for _, dir := range []string{d.Run, d.Lib} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("state dir: %w", err)
		}
		if err := trustedDir(dir); err != nil {
			return err
		}
	}
	return nil
}

// checkTrusted checks the state directories that exist; one that does not
// holds nothing to act on.
func (d Dirs) checkTrusted() error {
	for _, dir := range []string{d.Run, d.Lib} {
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := trustedDir(dir); err != nil {
			return err
		}
	}
	return nil
}

// trustedDir refuses dir unless it and every directory above it pass the
// StrictModes rule (see the top of this file).
func trustedDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	uid := uint32(os.Geteuid())
	for p, first := real, true; ; p, first = filepath.Dir(p), false {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("state dir %s: lstat %s: %w", dir, p, err)
		}
		if why := untrusted(st, uid, first); why != "" {
			return fmt.Errorf("state dir %s: %s %s; stepbox acts on the ledgers it keeps there, so it refuses a directory someone else could have written (as sshd refuses such a ~/.ssh): use --state-dir with a directory of your own, mode 0700", dir, p, why)
		}
		if p == "/" {
			return nil
		}
	}
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
