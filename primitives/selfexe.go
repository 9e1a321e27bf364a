package primitives

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// The binary a box process runs is a sealed copy of stepbox in memory,
// never the host's file: /proc/<PID>/exe of a box process, a magic link
// (proc(5)), would otherwise hand the box the host's stepbox binary to
// open, and a box that could write it would replace what the host runs
// next (CVE-2019-5736, fixed in runc the same way: libcontainer's
// dmz/cloned_binary). The copy is a memfd (memfd_create(2)) sealed
// against every change (fcntl(2), "File Sealing"): even opened through
// /proc for writing it cannot grow, shrink or take a write.

// selfExeSeals are the seals of the copy: no write, no size change, and
// no more seals (so none can be lifted by a later F_ADD_SEALS).
const selfExeSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// selfExeMinFD is the lowest descriptor the copy may have.
const selfExeMinFD = 100

var selfExeOnce struct {
	sync.Once
	f   *os.File
	err error
}

// SelfExe returns the sealed memfd copy of /proc/self/exe, made on the
// first call and shared by every later one (do not close it). It is
// close-on-exec: a child execs it by path (SelfExePath) before its
// descriptors close, or with execveat(fd, "", AT_EMPTY_PATH).
func SelfExe() (*os.File, error) {
	selfExeOnce.Do(func() {
		selfExeOnce.f, selfExeOnce.err = sealedCopy("/proc/self/exe")
	})
	return selfExeOnce.f, selfExeOnce.err
}

// SelfExePath is the path a child of this process execs SelfExe by:
// /proc/self/fd/N, which in the child (whose descriptor table is a copy)
// is the same memfd until execve(2) closes it.
func SelfExePath() (string, error) {
	f, err := SelfExe()
	if err != nil {
		return "", err
	}
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())), nil
}

// sealedCopy copies the file at path into a new memfd and seals it.
func sealedCopy(path string) (*os.File, error) {
	src, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("copy of the stepbox binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("stepbox", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("copy of the stepbox binary: memfd_create(\"stepbox\", MFD_CLOEXEC|MFD_ALLOW_SEALING): %w", err)
	}
	// Out of the way of the descriptors a child is given (0-2, the box's
	// socket at 3, enter's namespace files from 3): os/exec places those
	// with dup2, which would replace a low memfd before the child's execve.
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, selfExeMinFD)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("copy of the stepbox binary: fcntl(F_DUPFD_CLOEXEC, %d): %w", selfExeMinFD, err)
	}
	fd = high
	dst := os.NewFile(uintptr(fd), "memfd:stepbox")
	// io.Copy between two files uses copy_file_range(2) or sendfile(2).
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return nil, fmt.Errorf("copy of the stepbox binary from %s: %w", path, err)
	}
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, selfExeSeals); err != nil {
		dst.Close()
		return nil, fmt.Errorf("copy of the stepbox binary: fcntl(F_ADD_SEALS, F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE): %w", err)
	}
	return dst, nil
}
