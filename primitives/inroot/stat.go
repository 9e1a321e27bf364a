package inroot

import (
	"errors"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// openPath opens name inside root with flags (O_PATH, or O_DIRECTORY for
// a listing), resolving as Open does; on a kernel without openat2, any
// symlink on the way is refused.
func openPath(root, name string, flags int) (int, string, error) {
	rel := strings.TrimLeft(path.Clean("/"+name), "/")
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, rel, &os.PathError{Op: "open", Path: root, Err: err}
	}
	if rel == "" {
		if flags&unix.O_PATH != 0 {
			return rootFD, rel, nil
		}
		defer unix.Close(rootFD)
		rel = "."
	} else {
		defer unix.Close(rootFD)
	}
	flags |= unix.O_CLOEXEC
	if flags&unix.O_PATH == 0 {
		// openat2 refuses these with O_PATH (EINVAL), which opens nothing.
		flags |= unix.O_NONBLOCK | unix.O_NOCTTY
	}
	fd, err := openat2(rootFD, rel, &unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOSYS) {
		fd, err = openNoSymlinks(rootFD, rel, flags)
	}
	if err != nil {
		return -1, rel, &os.PathError{Op: "open", Path: "/" + rel, Err: err}
	}
	return fd, rel, nil
}

// OpenPath opens the directory name inside root with O_PATH, resolved
// as Stat resolves it, for calls relative to it (statx of its mount ID,
// readlinkat of an entry) that must see the directory checked, not one
// the box put at the same path meanwhile.
func OpenPath(root, name string) (*os.File, error) {
	fd, rel, err := openPath(root, name, unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/"+rel), nil
}

// Stat is stat(2) of name inside root, symlinks resolved inside it.
func Stat(root, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, rel, err := openPath(root, name, unix.O_PATH)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return st, &os.PathError{Op: "fstat", Path: "/" + rel, Err: err}
	}
	return st, nil
}

// Lstat is lstat(2) of name inside root: its directory resolved inside
// root, name itself not followed.
func Lstat(root, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	clean := path.Clean("/" + name)
	fd, _, err := openPath(root, path.Dir(clean), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	base := path.Base(clean)
	if base == "/" {
		base = "."
	}
	if err := unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH); err != nil {
		return st, &os.PathError{Op: "lstat", Path: clean, Err: err}
	}
	return st, nil
}

// Readlink is readlink(2) of name inside root, its directory resolved
// inside root.
func Readlink(root, name string) (string, error) {
	clean := path.Clean("/" + name)
	fd, _, err := openPath(root, path.Dir(clean), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, unix.PathMax)
	n, err := unix.Readlinkat(fd, path.Base(clean), buf)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: clean, Err: err}
	}
	return string(buf[:n]), nil
}

// ReadDir lists up to max names of the directory name inside root, in
// directory order.
func ReadDir(root, name string, max int) ([]os.DirEntry, error) {
	fd, rel, err := openPath(root, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "/"+rel)
	defer f.Close()
	ents, err := f.ReadDir(max)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return ents, err
}
