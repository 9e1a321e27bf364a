package primitives

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/rootfs"
)

// A box with CAP_SYS_ADMIN over its mount namespace can mask /proc/sys or
// /proc/kallsyms itself (a read-only bind, /dev/null bound over a file)
// and unmount the mask the next moment: such a mask closes nothing, and
// `probe` and `security` took it for Docker's (ut29 F5). A mask counts
// only when stepbox made it (`mount mask`, which records the mounts it
// made), or when the box cannot lift it: no CAP_SYS_ADMIN for its next
// command, a seccomp filter that fails umount2, or a mount namespace
// owned by a user namespace above the box's, where it holds nothing.

// mountID is the unique ID of the mount path resolves through in the box
// of process pid (statx(2) STATX_MNT_ID_UNIQUE, Linux 6.8, never reused;
// the reusable STATX_MNT_ID before), 0 if unread.
func mountID(pid int, path string) uint64 {
	var stx unix.Statx_t
	p := fmt.Sprintf("/proc/%d/root%s", pid, path)
	if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID_UNIQUE, &stx); err != nil {
		return 0
	}
	if stx.Mask&(unix.STATX_MNT_ID_UNIQUE|unix.STATX_MNT_ID) == 0 {
		return 0
	}
	return stx.Mnt_id
}

// recordMasks remembers the mounts `mount mask` made: those at its paths
// inside root, as the box's command process sees them.
func (b *Box) recordMasks(root string) {
	pid := b.CommandPID()
	var ids []uint64
	for _, p := range append(slices.Clone(rootfs.MaskedPaths), rootfs.ReadonlyPaths...) {
		if id := mountID(pid, strings.TrimSuffix(root, "/")+p); id != 0 {
			ids = append(ids, id)
		}
	}
	b.mu.Lock()
	b.fs.MaskMounts = append(b.fs.MaskMounts, ids...)
	b.mu.Unlock()
}

// maskOf says whether m, the mount path resolves through, masks it: a
// mount on path or a directory between it and its file system's mount
// (/proc, /sys), or one over /proc or /sys that is not that file system.
func maskOf(m *rootfs.Mount, path string) bool {
	if m == nil {
		return false
	}
	for top, fstype := range map[string]string{"/proc": "proc", "/sys": "sysfs"} {
		if path != top && !strings.HasPrefix(path, top+"/") {
			continue
		}
		if m.Point == top {
			return m.FSType != fstype
		}
		return strings.HasPrefix(m.Point, top+"/")
	}
	return false
}

// boxMasks reports, of paths, those masked by a mount the box made
// itself and can unmount, each with that mount's type and point.
func (b *Box) boxMasks(ctx context.Context, paths []string) (map[string]string, error) {
	pid := b.CommandPID()
	covers, err := coveringMounts(ctx, "/proc", pid, paths)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	made := slices.Clone(b.fs.MaskMounts)
	b.mu.Unlock()
	lift := -1 // not asked yet
	out := map[string]string{}
	for _, p := range paths {
		m := covers[p]
		if !maskOf(m, p) || slices.Contains(made, mountID(pid, p)) {
			continue
		}
		if lift < 0 {
			lift = 0
			if b.canUnmount(pid) {
				lift = 1
			}
		}
		if lift == 1 {
			out[p] = fmt.Sprintf("%s on %s", m.FSType, m.Point)
		}
	}
	return out, nil
}

// canUnmount reports whether the box's next command can unmount a mount
// of its mount namespace: CAP_SYS_ADMIN in a user namespace that owns it
// (its own, or one above that owner), and umount2 not failed by seccomp.
// A mount the kernel locked (MNT_LOCKED, copied into a less privileged
// namespace) is not told apart: it counts as one the box can lift.
func (b *Box) canUnmount(pid int) bool {
	sec := b.Security()
	if (sec.Caps.Effective|sec.Caps.Bounding)&(1<<unix.CAP_SYS_ADMIN) == 0 {
		return false
	}
	if sec.Seccomp.Source == "deny" && (slices.Contains(sec.Seccomp.Deny, "umount2") || slices.Contains(sec.Seccomp.Deny, "umount")) {
		return false
	}
	var own unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &own) != nil {
		return true
	}
	const nsGetUserNS, nsGetParent = 0xb701, 0xb702 // _IO(0xb7, 1), _IO(0xb7, 2)
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return true
	}
	ns, err := unix.IoctlRetInt(fd, nsGetUserNS)
	unix.Close(fd)
	if err != nil {
		return true
	}
	// The owner, then each user namespace above it: the box's must be
	// one of them.
	for fd = ns; ; {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Ino == own.Ino && st.Dev == own.Dev {
			unix.Close(fd)
			return true
		}
		parent, err := unix.IoctlRetInt(fd, nsGetParent)
		unix.Close(fd)
		if err != nil {
			return false
		}
		fd = parent
	}
}
