// Package infile opens a file on the host that the learner names for
// stepbox to read (a script for `source` and `stepbox run`, a lesson
// file, an image archive): a regular file only. A FIFO blocks open(2)
// until a writer comes and a device such as /dev/zero never ends, so
// reading either hangs the session; opening some devices acts by itself
// (a watchdog starts counting). So the path is looked at through an
// O_PATH descriptor, which opens nothing (open(2)), and the same inode is
// opened for reading through /proc/self/fd only once it is a regular
// file: a swap of the path between the look and the open changes nothing.
package infile

import (
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// NotRegularError is a path that names something other than a regular file.
type NotRegularError struct {
	Path string
	Kind string // as Kind names it: "FIFO", "character device", "directory"…
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("%s is a %s, not a regular file", e.Path, e.Kind)
}

// Open opens the regular file at path for reading.
func Open(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	look := os.NewFile(uintptr(fd), path)
	defer look.Close()
	fi, err := look.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Kind: Kind(fi.Mode())}
	}
	rfd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(rfd), path), nil
}

// ReadFile reads the regular file at path, refusing one of more than
// max bytes: a lesson file, not whatever a path could lead to.
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(b)) > max {
		err = fmt.Errorf("%s is bigger than %d bytes", path, max)
	}
	return b, err
}

// Kind names a file type as a learner would.
func Kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}
