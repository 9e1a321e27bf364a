package rootfs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrHostMountNamespace is returned (wrapped) by every function that would
// mount, unmount or pivot in the host's mount namespace.
var ErrHostMountNamespace = errors.New("mount before unshare mnt would change the host's mounts; run `unshare mnt` first")

// Inode numbers the kernel gives the initial namespaces (uapi linux/nsfs.h).
const (
	mntNSInitIno  = 0xEFFFFFF8 // MNT_NS_INIT_INO, fixed since Linux 6.18
	pidNSInitIno  = 0xEFFFFFFC // PROC_PID_INIT_INO, fixed since Linux 3.8
	userNSInitIno = 0xEFFFFFFD // PROC_USER_INIT_INO, fixed since Linux 3.8
)

// checkMountNamespace refuses when the calling thread is in the host's
// mount namespace: the initial one, or that of PID 1 as this thread's
// /proc shows it. Two cases are not the host:
//   - PID 1 lives in this thread's own, non-initial PID namespace: /proc is
//     the box's own (mounted after pivot_root), and PID 1 is the box's init;
//   - there is no /proc/thread-self: the thread has left the host's root
//     (pivot_root or chroot) and no proc is mounted in the new one.
//
// PID 1's namespaces may be unreadable (EACCES: ptrace_may_access(2) rules,
// e.g. when PID 1 holds capabilities the caller lacks); then only the
// initial-namespace test applies.
func checkMountNamespace() error {
	var self unix.Stat_t
	switch err := unix.Stat("/proc/thread-self/ns/mnt", &self); {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("stat /proc/thread-self/ns/mnt: %w", err)
	}
	if self.Ino == mntNSInitIno {
		return ErrHostMountNamespace
	}
	var init unix.Stat_t
	switch err := unix.Stat("/proc/1/ns/mnt", &init); {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM), errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("stat /proc/1/ns/mnt: %w", err)
	}
	if init.Dev != self.Dev || init.Ino != self.Ino {
		return nil
	}
	var selfPID, initPID unix.Stat_t
	if unix.Stat("/proc/thread-self/ns/pid", &selfPID) == nil && unix.Stat("/proc/1/ns/pid", &initPID) == nil &&
		selfPID.Ino == initPID.Ino && selfPID.Ino != pidNSInitIno {
		return nil
	}
	return ErrHostMountNamespace
}

// inUserNamespace reports whether the calling thread is in a user
// namespace other than the initial one.
func inUserNamespace() bool {
	var st unix.Stat_t
	return unix.Stat("/proc/thread-self/ns/user", &st) == nil && st.Ino != userNSInitIno
}
