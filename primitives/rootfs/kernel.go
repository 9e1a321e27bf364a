package rootfs

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

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
	OpenTree(dirfd int, path string, flags uint) (int, error)
	MountSetattr(dirfd int, path string, flags uint, attr *unix.MountAttr) error
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
func (local) OpenTree(dirfd int, path string, flags uint) (int, error) {
	return unix.OpenTree(dirfd, path, flags)
}
func (local) MoveMount(fromDirfd int, fromPath string, toDirfd int, toPath string, flags int) error {
	return unix.MoveMount(fromDirfd, fromPath, toDirfd, toPath, flags)
}
func (local) MountSetattr(dirfd int, path string, flags uint, attr *unix.MountAttr) error {
	return unix.MountSetattr(dirfd, path, flags, attr)
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

// Planning is k with nothing performed: what `explain` runs the steps
// against, so the plan it prints is the record the step writes, built by
// the same code (then marked not run, step.MarkNotRun). Reads still see
// the box through k. A device node in a user namespace is refused, as
// the kernel refuses it (mknod(2), EPERM), so the plan takes the same
// turn as the step. Descriptors are numbered from 3, as a fresh process's.
func Planning(k Kernel) Kernel { return &planning{real: k, next: 3, made: map[string]bool{}} }

type planning struct {
	real Kernel
	next int
	made map[string]bool // directories the plan has made
}

// isPlanning reports whether the steps run against Planning: they then
// skip the checks of state that earlier steps will have made.
func isPlanning(k Kernel) bool { _, ok := k.(*planning); return ok }

func (p *planning) fd() (int, error) { p.next++; return p.next - 1, nil }

func (p *planning) Mount(string, string, string, uintptr, string) error { return nil }
func (p *planning) Unmount(string, int) error                           { return nil }
func (p *planning) Mkdir(q string, _ uint32) error                      { p.made[q] = true; return nil }
func (p *planning) Chmod(string, uint32) error                          { return nil }
func (p *planning) Mknod(_ string, mode uint32, _ int) error {
	if mode&unix.S_IFMT == unix.S_IFCHR && inUserNamespace(p.real) {
		return unix.EPERM
	}
	return nil
}
func (p *planning) Symlink(string, string) error                  { return nil }
func (p *planning) Unlinkat(int, string, int) error               { return nil }
func (p *planning) Chdir(string) error                            { return nil }
func (p *planning) Fchdir(int) error                              { return nil }
func (p *planning) Chroot(string) error                           { return nil }
func (p *planning) PivotRoot(string, string) error                { return nil }
func (p *planning) Open(string, int, uint32) (int, error)         { return p.fd() }
func (p *planning) Close(int) error                               { return nil }
func (p *planning) Fsopen(string, int) (int, error)               { return p.fd() }
func (p *planning) FsconfigSetString(int, string, string) error   { return nil }
func (p *planning) FsconfigSetFlag(int, string) error             { return nil }
func (p *planning) FsconfigCreate(int) error                      { return nil }
func (p *planning) Fsmount(int, int, int) (int, error)            { return p.fd() }
func (p *planning) MoveMount(int, string, int, string, int) error { return nil }
func (p *planning) OpenTree(int, string, uint) (int, error)       { return p.fd() }
func (p *planning) Read(int, []byte) (int, error)                 { return 0, nil }
func (p *planning) Path(q string) string                          { return p.real.Path(q) }
func (p *planning) Proc() string                                  { return p.real.Proc() }

// MountSetattr is mount_setattr(2), planned: nothing changes.
func (p *planning) MountSetattr(int, string, uint, *unix.MountAttr) error { return nil }

// madeByPlan reports whether a plan has made directory q already.
func madeByPlan(k Kernel, q string) bool {
	p, ok := k.(*planning)
	return ok && p.made[q]
}

// umask is the session's umask, which the box inherits, read once from
// /proc/self/status (reading it with umask(2) would change it).
var umask = sync.OnceValue(func() os.FileMode {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o022
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return os.FileMode(m)
			}
		}
	}
	return 0o022
})
