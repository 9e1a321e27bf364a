package primitives

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The binary a box process runs is never the host's file as a box could
// write it: /proc/<PID>/exe of a box process, a magic link (proc(5)),
// would otherwise hand the box the host's stepbox binary to open, and a
// box that could write it would replace what the host runs next
// (CVE-2019-5736). As runc 1.2 does (libcontainer/exeseal), stepbox
// opens itself through an overlayfs of its own directory that has no
// upper layer, mounted read-only and never attached to any mount table
// (fsopen(2), fsmount(2)): a write through it fails with EROFS, and
// there is no way back to the writable file underneath. It costs a mount,
// not a copy of the binary. Where the kernel or the caller's privileges
// refuse that mount (rootless, before Linux 5.2), the binary is copied
// into a memfd (memfd_create(2)) sealed against every change (fcntl(2),
// "File Sealing"), runc's earlier fix (dmz/cloned_binary): even opened
// through /proc for writing it cannot grow, shrink or take a write.

// selfExeSeals are the seals of the copy: no write, no size change, and
// no more seals (so none can be lifted by a later F_ADD_SEALS).
const selfExeSeals = unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE

// selfExeMinFD is the lowest descriptor the copy may have.
const selfExeMinFD = 100

var selfExeOnce struct {
	sync.Once
	f       *os.File
	err     error
	overlay bool // f is the binary through the read-only overlay
}

// selfExeScratch is the directory (the session's run dir) where the
// overlay's second, empty layer is made for the instant of the mount:
// overlayfs without an upper layer needs two lower ones. Set by
// OpenSession; without it, SelfExe copies.
var selfExeScratch struct {
	sync.Mutex
	dir string
}

func setSelfExeScratch(dir string) {
	selfExeScratch.Lock()
	defer selfExeScratch.Unlock()
	selfExeScratch.dir = dir
}

// SelfExe returns stepbox as a box process may run it: through the
// read-only overlay, or else as the sealed memfd copy; made on the first
// call and shared by every later one (do not close it). It is
// close-on-exec: a child execs it by path (SelfExePath) before its
// descriptors close, or with execveat(fd, "", AT_EMPTY_PATH).
func SelfExe() (*os.File, error) {
	selfExeOnce.Do(func() {
		selfExeScratch.Lock()
		scratch := selfExeScratch.dir
		selfExeScratch.Unlock()
		if scratch != "" {
			if f, err := readOnlyOverlay("/proc/self/exe", scratch); err == nil {
				selfExeOnce.f, selfExeOnce.overlay = f, true
				return
			}
		}
		selfExeOnce.f, selfExeOnce.err = sealedCopy("/proc/self/exe")
	})
	return selfExeOnce.f, selfExeOnce.err
}

// selfExeFrom says, for a step's record, what box processes run, and
// the man page of how it was made.
func selfExeFrom() (what, man string) {
	if _, err := SelfExe(); err == nil && selfExeOnce.overlay {
		return "stepbox through a read-only overlayfs mounted nowhere", "fsmount(2)"
	}
	return "a sealed memfd copy of stepbox", "memfd_create(2)"
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

// readOnlyOverlay opens the file at path (a link such as /proc/self/exe
// is read first) through a new overlayfs whose lower layers are the
// file's directory, on top, and an empty directory made in scratch and
// removed once mounted. The mount is read-only, nosuid and nodev, and is
// never attached: it lives as long as the file returned.
func readOnlyOverlay(path, scratch string) (*os.File, error) {
	if real, err := os.Readlink(path); err == nil {
		path = real
	}
	dir, name := filepath.Split(path)
	empty, err := os.MkdirTemp(scratch, ".exe-")
	if err != nil {
		return nil, fmt.Errorf("stepbox through an overlay: %w", err)
	}
	defer os.Remove(empty)
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("stepbox through an overlay: fsopen(\"overlay\", FSOPEN_CLOEXEC): %w", err)
	}
	defer unix.Close(fsfd)
	// ':' separates layers and '\' escapes in lowerdir (overlayfs docs).
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	lower := esc.Replace(filepath.Clean(dir)) + ":" + esc.Replace(empty)
	if err := unix.FsconfigSetString(fsfd, "lowerdir", lower); err != nil {
		return nil, fmt.Errorf("stepbox through an overlay: fsconfig(FSCONFIG_SET_STRING, \"lowerdir\", %q): %w", lower, err)
	}
	// xino matters nothing here; off spares the kernel log a note when
	// the two layers are on different filesystems (as runc does).
	unix.FsconfigSetString(fsfd, "xino", "off")
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, fmt.Errorf("stepbox through an overlay: fsconfig(FSCONFIG_CMD_CREATE): %w", err)
	}
	mnt, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV)
	if err != nil {
		return nil, fmt.Errorf("stepbox through an overlay: fsmount(MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV): %w", err)
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("stepbox through an overlay: open %s: %w", name, err)
	}
	return highFile(fd, "overlay:"+name)
}

// highFile moves fd out of the way of the descriptors a child is given
// (0-2, the box's socket at 3, enter's namespace files from 3): os/exec
// places those with dup2, which would replace a low descriptor of the
// binary before the child's execve.
func highFile(fd int, name string) (*os.File, error) {
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, selfExeMinFD)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("stepbox's binary: fcntl(F_DUPFD_CLOEXEC, %d): %w", selfExeMinFD, err)
	}
	return os.NewFile(uintptr(high), name), nil
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
	dst, err := highFile(fd, "memfd:stepbox")
	if err != nil {
		return nil, err
	}
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
