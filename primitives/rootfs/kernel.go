package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Kernel performs the syscalls of a filesystem step where the box is: in
// the box's executor (one op per call, see primitives/executor.go), or,
// for Local, on the calling thread. The steps decide and record; a
// Kernel only performs. Reads go through Path and Proc, so the session
// can see the box's files and mount table from outside.
type Kernel interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
	Unmount(target string, flags int) error
	Mkdir(path string, mode uint32) error
	Chmod(path string, mode uint32) error
	Mknod(path string, mode uint32, dev int) error
	Symlink(target, link string) error
	Unlinkat(dirfd int, path string, flags int) error
	Chdir(path string) error
	Fchdir(fd int) error
	Chroot(path string) error
	PivotRoot(newRoot, putOld string) error
	Open(path string, flags int, mode uint32) (int, error)
	Close(fd int) error
	Fsopen(fsname string, flags int) (int, error)
	FsconfigSetString(fd int, key, value string) error
	FsconfigSetFlag(fd int, key string) error
	FsconfigCreate(fd int) error
	Fsmount(fd, flags, attr int) (int, error)
	MoveMount(fromDirfd int, fromPath string, toDirfd int, toPath string, flags int) error
	Read(fd int, buf []byte) (int, error)

	// Path is where this process reaches path p as the box sees it
	// (relative to the box's working directory when p is relative).
	Path(p string) string
	// Proc is the /proc directory of the box's process, for its
	// mountinfo and ns/ files.
	Proc() string
}

// Local is the calling thread as the box: for tests that run the steps
// in a child process of their own.
var Local Kernel = local{}

type local struct{}

func (local) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}
func (local) Unmount(target string, flags int) error        { return unix.Unmount(target, flags) }
func (local) Mkdir(path string, mode uint32) error          { return unix.Mkdir(path, mode) }
func (local) Chmod(path string, mode uint32) error          { return unix.Chmod(path, mode) }
func (local) Mknod(path string, mode uint32, dev int) error { return unix.Mknod(path, mode, dev) }
func (local) Symlink(target, link string) error             { return unix.Symlink(target, link) }
func (local) Unlinkat(dirfd int, path string, flags int) error {
	return unix.Unlinkat(dirfd, path, flags)
}
func (local) Chdir(path string) error                { return unix.Chdir(path) }
func (local) Fchdir(fd int) error                    { return unix.Fchdir(fd) }
func (local) Chroot(path string) error               { return unix.Chroot(path) }
func (local) PivotRoot(newRoot, putOld string) error { return unix.PivotRoot(newRoot, putOld) }
func (local) Open(path string, flags int, mode uint32) (int, error) {
	return unix.Open(path, flags|unix.O_CLOEXEC, mode)
}
func (local) Close(fd int) error                           { return unix.Close(fd) }
func (local) Fsopen(fsname string, flags int) (int, error) { return unix.Fsopen(fsname, flags) }
func (local) FsconfigSetString(fd int, key, v string) error {
	return unix.FsconfigSetString(fd, key, v)
}
func (local) FsconfigSetFlag(fd int, key string) error { return unix.FsconfigSetFlag(fd, key) }
func (local) FsconfigCreate(fd int) error              { return unix.FsconfigCreate(fd) }
func (local) Fsmount(fd, flags, attr int) (int, error) { return unix.Fsmount(fd, flags, attr) }
func (local) MoveMount(fromDirfd int, fromPath string, toDirfd int, toPath string, flags int) error {
	return unix.MoveMount(fromDirfd, fromPath, toDirfd, toPath, flags)
}
func (local) Read(fd int, buf []byte) (int, error) { return unix.Read(fd, buf) }
func (local) Path(p string) string                 { return p }

// Proc names the calling thread by its tid as /proc shows it:
// /proc/thread-self resolves to it, where Gettid would give the tid in
// the caller's PID namespace, which differs from /proc's until the box
// mounts its own proc.
func (local) Proc() string {
	link, err := os.Readlink("/proc/thread-self")
	if err != nil {
		return "/proc/thread-self"
	}
	if _, err := strconv.Atoi(filepath.Base(link)); err != nil {
		return "/proc/thread-self"
	}
	return "/proc/" + filepath.Base(link)
}

// ProcOf is the /proc directory of a process seen from this one.
func ProcOf(pid int) string { return fmt.Sprintf("/proc/%d", pid) }
