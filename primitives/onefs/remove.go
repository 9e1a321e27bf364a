// Package onefs removes a tree stepbox made without ever removing through
// a mount inside it: a box with host root can bind-mount any host
// directory onto a path in stepbox's state dir, and os.RemoveAll (like
// `rm -r`) would walk into it and empty it. Here each directory is
// opened from its parent's descriptor with openat2(2)'s RESOLVE_NO_XDEV,
// the kernel's own answer at the moment of the open: a mount point there
// (a bind of the same filesystem too) fails with EXDEV and is left as it
// is, named in the error, before anything under it is touched. A mount
// made after a directory was opened does not move the walk either: the
// descriptor holds the directory underneath, which is all that is
// removed. os.RemoveAll, moby's and containerd's cross mounts or unmount
// them first; x/sys has no such walk.
package onefs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// MountError is a mount point found in a tree being removed: left in
// place, with whatever is mounted there.
type MountError struct{ Path string }

func (e *MountError) Error() string {
	return e.Path + " is a mount point (another filesystem is mounted there); left in place, nothing under it removed"
}

// openat2 is unix.Openat2; a kernel before 5.6 has none (ENOSYS), and
// the walk then compares device numbers instead (tests take that path).
var openat2 = unix.Openat2

// RemoveAll removes path and everything under it, as os.RemoveAll does,
// except what is on another mount: path itself a mount point, or a mount
// below it, is left with what leads to it, and the error names each
// (errors.As finds a *MountError). A path that is not there is no error.
func RemoveAll(path string) error {
	return Remove(path, nil)
}

// Remove is RemoveAll that hands each unlinkat(2) to do, which runs it:
// a step that records its system calls (step.Step.Do). nil runs them.
func Remove(path string, do func(call string, fn func() error) error) error {
	if do == nil {
		do = func(_ string, fn func() error) error { return fn() }
	}
	path = filepath.Clean(path)
	parent, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return &os.PathError{Op: "open", Path: filepath.Dir(path), Err: err}
	}
	defer unix.Close(parent)
	w := walk{do: do}
	w.remove(parent, filepath.Base(path), path)
	return errors.Join(w.errs...)
}

type walk struct {
	do   func(call string, fn func() error) error
	errs []error
}

// remove removes name, in the directory open at dirfd, and all under it
// on the same mount; false when something was left.
func (w *walk) remove(dirfd int, name, full string) bool {
	// A directory answers EISDIR, and is then emptied and removed with
	// AT_REMOVEDIR: that first try is not a step of the removal, so the
	// record (and the plan, layers' removeLayer) leaves it out.
	err := unix.Unlinkat(dirfd, name, 0)
	if err != unix.EISDIR {
		err = w.recorded(full, 0, err)
	}
	switch err {
	case nil, unix.ENOENT:
		return true
	case unix.EBUSY:
		// unlink(2) of a mount point: a file bind-mounted over a file.
		w.errs = append(w.errs, &MountError{Path: full})
		return false
	case unix.EISDIR:
	default:
		w.errs = append(w.errs, &os.PathError{Op: "unlinkat", Path: full, Err: err})
		return false
	}
	fd, err := openDir(dirfd, name)
	switch err {
	case nil:
	case unix.ENOENT:
		return true
	case unix.EXDEV:
		w.errs = append(w.errs, &MountError{Path: full})
		return false
	default:
		w.errs = append(w.errs, &os.PathError{Op: "openat2", Path: full, Err: err})
		return false
	}
	dir := os.NewFile(uintptr(fd), full)
	defer dir.Close()
	// Entries removed while the directory is read may make a filesystem
	// skip others: read it again while rmdir(2) finds it not empty, as
	// os.RemoveAll does.
	for pass := 0; ; pass++ {
		all := true
		for {
			names, err := dir.Readdirnames(1024)
			slices.Sort(names) // the order Plan shows, whatever the filesystem's
			for _, n := range names {
				all = w.remove(fd, n, filepath.Join(full, n)) && all
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				w.errs = append(w.errs, fmt.Errorf("read %s: %w", full, err))
				return false
			}
		}
		if !all {
			return false // not empty: the error says what stayed
		}
		err := w.unlinkat(dirfd, name, full, unix.AT_REMOVEDIR)
		switch {
		case err == nil || err == unix.ENOENT:
			return true
		case err == unix.ENOTEMPTY && pass < 3:
			if _, err := dir.Seek(0, io.SeekStart); err == nil {
				continue
			}
		case err == unix.EBUSY:
			w.errs = append(w.errs, &MountError{Path: full}) // mounted on since it was opened
			return false
		}
		w.errs = append(w.errs, &os.PathError{Op: "unlinkat", Path: full, Err: err})
		return false
	}
}

// Plan returns the unlinkat(2) calls Remove would make for path as it
// is now, in Remove's order (each directory's entries sorted, deepest
// first), with path shown as shownAs: a step's plan shows the calls its
// run will record. A directory of more than 1024 entries may be emptied
// in another order; what goes is the same.
func Plan(path, shownAs string) ([]string, error) {
	var calls []string
	var walk func(p, shown string) error
	walk = func(p, shown string) error {
		entries, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range entries {
			ep, es := filepath.Join(p, e.Name()), filepath.Join(shown, e.Name())
			if !e.IsDir() {
				calls = append(calls, fmt.Sprintf("unlinkat(%q, 0)", es))
				continue
			}
			if err := walk(ep, es); err != nil {
				return err
			}
		}
		calls = append(calls, fmt.Sprintf("unlinkat(%q, AT_REMOVEDIR)", shown))
		return nil
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{fmt.Sprintf("unlinkat(%q, 0)", shownAs)}, nil
	}
	if err := walk(path, filepath.Clean(shownAs)); err != nil {
		return nil, err
	}
	return calls, nil
}

// unlinkat runs unlinkat(2) through w.do and returns its bare errno.
func (w *walk) unlinkat(dirfd int, name, full string, flags int) error {
	return w.recorded(full, flags, unix.Unlinkat(dirfd, name, flags))
}

// recorded hands an unlinkat(2) that returned errno to w.do, to be
// recorded, and returns errno.
func (w *walk) recorded(full string, flags int, errno error) error {
	call := fmt.Sprintf("unlinkat(%q, 0)", full)
	if flags == unix.AT_REMOVEDIR {
		call = fmt.Sprintf("unlinkat(%q, AT_REMOVEDIR)", full)
	}
	w.do(call, func() error {
		if errno == unix.ENOENT {
			return nil
		}
		return errno
	})
	return errno
}

// openDir opens directory name in dirfd for reading, refusing a symlink
// and a mount point (EXDEV).
func openDir(dirfd int, name string) (int, error) {
	how := unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_BENEATH,
	}
	fd, err := openat2(dirfd, name, &how)
	if err != unix.ENOSYS {
		return fd, err
	}
	// Before openat2: a mount of another filesystem shows its own device
	// number (a bind of the same filesystem does not: 5.6 is needed).
	fd, err = unix.Openat(dirfd, name, int(how.Flags), 0)
	if err != nil {
		return -1, err
	}
	var in, at unix.Stat_t
	if err := unix.Fstat(dirfd, &in); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Fstat(fd, &at); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if at.Dev != in.Dev {
		unix.Close(fd)
		return -1, unix.EXDEV
	}
	return fd, nil
}
