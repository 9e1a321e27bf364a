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
	userNSInitIno = 0xEFFFFFFD // PROC_USER_INIT_INO, fixed since Linux 3.8
)

// hostMountNS identifies the mount namespace this stepbox treats as the
// host's: the one the session started in. A process captures it when it
// starts; a box's PID 1, started after the box may have left that
// namespace, is told it (SetHostMountNamespace).
var hostMountNS = func() (id nsID) {
	var st unix.Stat_t
	if unix.Stat("/proc/self/ns/mnt", &st) == nil {
		id = nsID{Dev: st.Dev, Ino: st.Ino}
	}
	return id
}()

type nsID struct{ Dev, Ino uint64 }

// HostMountNamespace names the host's mount namespace as "DEV:INO", for a
// process this one starts after leaving it.
func HostMountNamespace() string { return fmt.Sprintf("%d:%d", hostMountNS.Dev, hostMountNS.Ino) }

// SetHostMountNamespace takes the host's mount namespace as
// HostMountNamespace wrote it.
func SetHostMountNamespace(s string) error {
	var id nsID
	if _, err := fmt.Sscanf(s, "%d:%d", &id.Dev, &id.Ino); err != nil || id.Ino == 0 {
		return fmt.Errorf("host mount namespace %q: want DEV:INO", s)
	}
	hostMountNS = id
	return nil
}

// checkMountNamespace refuses when the box's process (k) is in the host's
// mount namespace: the initial one, or the one the session started in
// (which is the host's even when stepbox itself runs in a container).
// Without /proc/thread-self the thread has left the host's root
// (pivot_root or chroot) and no proc is mounted in the new one: it is not
// the host.
func checkMountNamespace(k Kernel) error {
	if isPlanning(k) {
		return nil // the plan of a step the box is not ready for yet
	}
	var self unix.Stat_t
	p := k.Proc() + "/ns/mnt"
	switch err := unix.Stat(p, &self); {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if self.Ino == mntNSInitIno || (self.Dev == hostMountNS.Dev && self.Ino == hostMountNS.Ino) {
		return ErrHostMountNamespace
	}
	return nil
}

// inUserNamespace reports whether the box's process is in a user
// namespace other than the initial one.
func inUserNamespace(k Kernel) bool {
	var st unix.Stat_t
	return unix.Stat(k.Proc()+"/ns/user", &st) == nil && st.Ino != userNSInitIno
}
