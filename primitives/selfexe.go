package primitives

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

var selfExeOnce = sync.OnceValues(sealSelfExe)

// SelfExe returns a sealed memfd copy of this binary, made once per
// process. A box runs stepbox from it, never from the host's file: a
// process in the box that reopened /proc/PID/exe for writing would
// otherwise reach the host's binary (CVE-2019-5736, runc's fix).
func SelfExe() (*os.File, error) { return selfExeOnce() }

func sealSelfExe() (*os.File, error) {
	src, err := os.Open(selfExe)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", selfExe, err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("stepbox", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create(\"stepbox\", MFD_CLOEXEC|MFD_ALLOW_SEALING): %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:stepbox")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("copy %s into a memfd: %w", selfExe, err)
	}
	const seals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("fcntl(F_ADD_SEALS, F_SEAL_SEAL|F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE): %w", err)
	}
	return f, nil
}
