// Package inroot reads files and walks trees that a box or an image
// controls — image layers, upper dirs, merged views, a box's root through
// /proc/PID/root — without letting that tree steer the session: a symlink
// resolves inside the tree as the kernel resolves it inside the box
// (openat2 RESOLVE_IN_ROOT), only regular files are read, up to a size
// cap and within a time bound, and walks stop at a depth and a count and
// say what they skipped.
package inroot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Timeout bounds a read: a file on a FUSE or network filesystem the box
// mounted can block open(2) and read(2) for ever.
var Timeout = 5 * time.Second

// openat2 is unix.Openat2; tests replace it to take the path of a kernel
// without openat2 (before 5.6).
var openat2 = unix.Openat2

// ErrNotRegular is returned for a FIFO, device, socket or directory:
// opening or reading one could block or never end (/dev/zero).
var ErrNotRegular = errors.New("not a regular file")

// Open opens name inside root for reading (errors name it as the box
// sees it: /etc/passwd), root standing for "/": an
// absolute or ../ symlink cannot lead out of it, magic links
// (/proc/PID/fd/N) are refused, the open never blocks (a FIFO) nor
// takes a terminal, and anything but a regular file is refused.
func Open(root, name string) (*os.File, error) {
	rootFD, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rootFD)
	rel := strings.TrimLeft(path.Clean("/"+name), "/")
	flags := uint64(unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC)
	fd, err := openat2(rootFD, rel, &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS})
	if errors.Is(err, unix.ENOSYS) {
		fd, err = openNoSymlinks(rootFD, rel, int(flags))
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: "/" + rel, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: "/" + rel, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: "/" + rel, Err: ErrNotRegular}
	}
	return os.NewFile(uintptr(fd), "/"+rel), nil
}

// openNoSymlinks is Open's way on a kernel without openat2: one openat
// per element with O_NOFOLLOW, so any symlink on the way is refused
// (ELOOP) rather than resolved against the host's root.
func openNoSymlinks(rootFD int, rel string, flags int) (int, error) {
	dir, err := unix.Dup(rootFD)
	if err != nil {
		return -1, err
	}
	elems := strings.Split(rel, "/")
	for i, e := range elems {
		f := unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
		if i == len(elems)-1 {
			f = flags | unix.O_NOFOLLOW
		}
		fd, err := unix.Openat(dir, e, f, 0)
		unix.Close(dir)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("%s is a symlink, and this kernel has no openat2(2) (Linux 5.6) to resolve it inside the box: %w", path.Join(elems[:i+1]...), err)
		}
		if err != nil {
			return -1, err
		}
		dir = fd
	}
	return dir, nil
}

// ReadFile reads name inside root as Open opens it, refusing a file of
// more than max bytes and one that does not answer within Timeout.
func ReadFile(root, name string, max int64) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		f, err := Open(root, name)
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, max+1))
		if err == nil && int64(len(b)) > max {
			err = fmt.Errorf("read %s: bigger than %d bytes", f.Name(), max)
		}
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-time.After(Timeout):
		// The goroutine stays blocked in the kernel until the filesystem
		// answers; it closes its file then.
		return nil, fmt.Errorf("read %s: no answer within %s (a FUSE or network filesystem?)", path.Clean("/"+name), Timeout)
	}
}
