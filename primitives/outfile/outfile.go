// Package outfile writes the files stepbox makes at a path the learner
// names (export script, export bundle, save, image demo, --record), so
// that another local user cannot choose where root's bytes land or keep
// a hand on them: the directory must be the caller's or root's and
// writable by no one else, or a sticky directory such as /tmp; the file
// is made new with openat(O_CREAT|O_EXCL|O_NOFOLLOW) beside the target,
// fsynced, then renamed over it, so a symlink or a file planted at the
// path is replaced, never followed or reused.
package outfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Allowed says, for errors, where stepbox writes what the learner names.
const Allowed = "give a path in a directory that is yours (or root's) and that no other user can write, " +
	"or in a sticky one such as /tmp where the name is new or a regular file of yours"

// File is a file being written; Commit puts it at its path.
type File struct {
	*os.File
	dir       *os.File // the target's directory, held open: every step is relative to it
	tmp, base string
	done      bool
}

// Create opens a new file, mode perm, to be renamed to path by Commit.
func Create(path string, perm os.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if base == "" || base == "." || base == ".." {
		return nil, fmt.Errorf("%s: not a file name: %s", path, Allowed)
	}
	d, err := OpenDir(dir)
	if err != nil {
		return nil, err
	}
	if err := checkTarget(d, path, base); err != nil {
		d.Close()
		return nil, err
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		d.Close()
		return nil, err
	}
	tmp := "." + base + ".stepbox-" + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(int(d.Fd()), tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("openat(%s, O_CREAT|O_EXCL|O_NOFOLLOW): %w", filepath.Join(dir, tmp), err)
	}
	// The umask may have taken bits off perm; the mode is the one asked.
	if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
		unix.Close(fd)
		unix.Unlinkat(int(d.Fd()), tmp, 0)
		d.Close()
		return nil, fmt.Errorf("fchmod(%s): %w", filepath.Join(dir, tmp), err)
	}
	return &File{File: os.NewFile(uintptr(fd), filepath.Join(dir, tmp)), dir: d, tmp: tmp, base: base}, nil
}

// Commit fsyncs the file and renames it over its path.
func (f *File) Commit() error {
	if f.done {
		return nil
	}
	f.done = true
	defer f.dir.Close()
	err := f.File.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = unix.Renameat(int(f.dir.Fd()), f.tmp, int(f.dir.Fd()), f.base); err != nil {
			err = fmt.Errorf("renameat(%s, %s): %w", f.tmp, f.base, err)
		}
	}
	if err != nil {
		unix.Unlinkat(int(f.dir.Fd()), f.tmp, 0)
		return err
	}
	return f.dir.Sync()
}

// Abort removes the file; after Commit it does nothing.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	unix.Unlinkat(int(f.dir.Fd()), f.tmp, 0)
	f.dir.Close()
}

// Write writes data to a new file at path, mode perm, as Create does.
func Write(path string, data []byte, perm os.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// OpenDir opens dir after checking it is safe to write in: not a
// symlink another user owns, owned by the caller or root, writable by
// no one else unless sticky (then the sticky bit keeps others from
// renaming or removing what the caller makes in it). It returns the open directory, which later
// steps use so the path cannot be swapped under them.
func OpenDir(dir string) (*os.File, error) {
	// Clean: with a final slash lstat would follow a symlinked dir.
	dir = filepath.Clean(dir)
	var lst unix.Stat_t
	if err := unix.Lstat(dir, &lst); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: dir, Err: err}
	}
	if lst.Mode&unix.S_IFMT == unix.S_IFLNK && !trusted(lst.Uid) {
		return nil, fmt.Errorf("%s: a symlink owned by uid %d, another user: %s", dir, lst.Uid, Allowed)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open(%s, O_DIRECTORY): %w", dir, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fstat(%s): %w", dir, err)
	}
	if !trusted(st.Uid) {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: the directory belongs to uid %d, another user: %s", dir, st.Uid, Allowed)
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: the directory is writable by other users (mode %04o) and not sticky: %s", dir, st.Mode&0o7777, Allowed)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// checkTarget refuses, in a directory others can write (sticky, as
// OpenDir let through), a name that is already something other than
// the caller's own regular file: the other user may have made it.
func checkTarget(d *os.File, path, base string) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &st); err != nil {
		return fmt.Errorf("fstat(%s): %w", d.Name(), err)
	}
	if st.Mode&0o022 == 0 {
		return nil
	}
	var tst unix.Stat_t
	err := unix.Fstatat(int(d.Fd()), base, &tst, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fstatat(%s, AT_SYMLINK_NOFOLLOW): %w", path, err)
	}
	if tst.Mode&unix.S_IFMT != unix.S_IFREG || tst.Uid != uint32(os.Geteuid()) {
		kind := "a file"
		if tst.Mode&unix.S_IFMT == unix.S_IFLNK {
			kind = "a symlink"
		}
		return fmt.Errorf("%s: already there, %s of uid %d, in a directory other users can write (mode %04o): %s",
			path, kind, tst.Uid, st.Mode&0o7777, Allowed)
	}
	return nil
}

// Mkdir makes a new directory at path, mode 0700, for a tree the caller
// writes (export bundle): in a directory OpenDir accepts; an existing
// one is taken only if it is empty, the caller's and no one else can
// write it. made says whether it made the directory.
func Mkdir(path string) (made bool, err error) {
	var st unix.Stat_t
	err = unix.Lstat(path, &st)
	if err == nil {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return false, fmt.Errorf("%s: already there and not a directory: give a new or empty directory of yours", path)
		}
		if st.Uid != uint32(os.Geteuid()) || st.Mode&0o022 != 0 {
			return false, fmt.Errorf("%s: the directory belongs to uid %d with mode %04o: give a new directory, or an empty one that is yours and no other user can write",
				path, st.Uid, st.Mode&0o7777)
		}
		return false, nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return false, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	parent, base := filepath.Split(filepath.Clean(path))
	d, err := OpenDir(parent)
	if err != nil {
		return false, err
	}
	defer d.Close()
	// mkdirat fails with EEXIST if another user made the name first.
	if err := unix.Mkdirat(int(d.Fd()), base, 0o700); err != nil {
		return false, fmt.Errorf("mkdirat(%s, 0700): %w", path, err)
	}
	return true, nil
}

func trusted(uid uint32) bool {
	return uid == 0 || uid == uint32(os.Geteuid())
}
