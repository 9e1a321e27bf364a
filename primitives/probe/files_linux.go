package probe

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"stepbox/primitives/infile"
)

// The box controls every path a probe reads: with CAP_SYS_ADMIN it binds
// a FIFO over /proc/kallsyms, whose open(2) waits for a writer for ever,
// or a device whose open acts by itself (ut29 F10). So a probe looks at a
// path through an O_PATH descriptor, which opens nothing, and opens the
// same inode, without blocking, only once it is the kind of file the
// kernel keeps there; it reads a bounded amount. What a read may still
// wait on (a FUSE file the box serves) the session's time bound ends.

// want is the file a probe expects at a path: a regular file, or a
// character device; on a file system of the given magic (statfs(2)),
// any if 0.
type want struct {
	dev   uint64 // a character device of this number; 0: a regular file
	magic int64
	fs    string // the file system's name, for the message
}

var (
	procFile = want{magic: unix.PROC_SUPER_MAGIC, fs: "proc"}
	anyFile  = want{}
)

// notKernelError is a path where the box put a file other than the one
// the kernel keeps there: a probe reports it as such, neither open nor
// closed.
type notKernelError struct {
	path, kind string
}

func (e *notKernelError) Error() string {
	return fmt.Sprintf("%s is %s, not the kernel's file: the box put it there", e.path, e.kind)
}

// openChecked opens p with flags (O_RDONLY or O_RDWR) once it is the
// file w describes, never blocking on a FIFO, a socket or a device.
func openChecked(p string, flags int, w want) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	if kind := kindOf(st, w); kind != "" {
		return nil, &notKernelError{p, kind}
	}
	if w.magic != 0 {
		var sfs unix.Statfs_t
		if err := unix.Fstatfs(fd, &sfs); err != nil {
			return nil, &os.PathError{Op: "fstatfs", Path: p, Err: err}
		}
		if sfs.Type != w.magic {
			return nil, &notKernelError{p, fmt.Sprintf("a file on another file system (type %#x), not on %s", sfs.Type, w.fs)}
		}
	}
	rfd, err := reopen(fd, flags)
	if err != nil {
		return nil, fmt.Errorf("reopen %s: %w", p, err)
	}
	var again unix.Stat_t
	if err := unix.Fstat(rfd, &again); err != nil || again.Dev != st.Dev || again.Ino != st.Ino {
		unix.Close(rfd)
		return nil, fmt.Errorf("reopen %s: another file than the one looked at", p)
	}
	return os.NewFile(uintptr(rfd), p), nil
}

// kindOf says what st is where w was expected, "" when it is.
func kindOf(st unix.Stat_t, w want) string {
	typ := st.Mode & unix.S_IFMT
	if w.dev != 0 {
		if typ == unix.S_IFCHR && st.Rdev == w.dev {
			return ""
		}
		if typ == unix.S_IFCHR {
			return fmt.Sprintf("the character device %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
	} else if typ == unix.S_IFREG {
		return ""
	}
	fi := os.FileMode(0)
	switch typ {
	case unix.S_IFIFO:
		fi = os.ModeNamedPipe
	case unix.S_IFSOCK:
		fi = os.ModeSocket
	case unix.S_IFCHR:
		fi = os.ModeDevice | os.ModeCharDevice
	case unix.S_IFBLK:
		fi = os.ModeDevice
	case unix.S_IFDIR:
		fi = os.ModeDir
	case unix.S_IFREG:
		return "a regular file"
	}
	k := infile.Kind(fi)
	if typ == unix.S_IFCHR || typ == unix.S_IFBLK {
		k += fmt.Sprintf(" %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return "a " + k
}

// reopen opens the inode of the O_PATH descriptor fd with flags, without
// blocking, through the kernel's /proc/self/fd: a /proc the box mounted
// itself is refused.
func reopen(fd, flags int) (int, error) {
	dir, err := unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(dir)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(dir, &sfs); err != nil {
		return -1, err
	}
	if sfs.Type != unix.PROC_SUPER_MAGIC {
		return -1, fmt.Errorf("/proc/self/fd is not on proc (type %#x)", sfs.Type)
	}
	return unix.Openat(dir, strconv.Itoa(fd), flags|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
}

// readChecked reads at most n bytes of p, the file w describes.
func readChecked(p string, n int64, w want) ([]byte, error) {
	f, err := openChecked(p, unix.O_RDONLY, w)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// readSome reads at most n bytes of the regular file p, as valid UTF-8.
func readSome(p string, n int64, w want) ([]byte, error) {
	data, err := readChecked(p, n, w)
	if len(data) > 0 {
		err = nil
	}
	return bytes.ToValidUTF8(data, []byte("?")), err
}
