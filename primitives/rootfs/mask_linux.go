package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"stepbox/primitives/inroot"
	"stepbox/primitives/step"
)

// MaskedPaths and ReadonlyPaths are Docker's defaults (moby's
// oci/defaults.go): files of /proc and /sys that reach the host's kernel
// past every namespace. A masked file shows /dev/null, a masked
// directory an empty read-only tmpfs; a read-only path is bound onto
// itself and remounted read-only.
var (
	MaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
		"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
		"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
	}
	ReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// maskFlags: a masked directory is an empty tmpfs nobody can write.
const maskFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// MountMask masks MaskedPaths and makes ReadonlyPaths read-only inside
// root, as runc does for Docker (maskPath, readonlyPath in
// libcontainer/rootfs_linux.go). Paths the kernel does not have are
// skipped, as runc skips them. It needs the box's /proc (and /dev/null to
// mask files).
func MountMask(k Kernel, root string) (*step.Step, error) {
	st := &step.Step{Command: "mount mask", Man: []string{"mount(2)", "proc(5)", "sysfs(5)"}}
	fail := func(err error) (*step.Step, error) { return st, fmt.Errorf("mount mask: %w", err) }
	if err := checkMountNamespace(k); err != nil {
		return fail(err)
	}
	in := func(p string) string { return path.Join(root, p) }
	mounts, err := threadMounts(k)
	if err != nil {
		return fail(err)
	}
	if mountAt(mounts, in("/proc")) == nil && !isPlanning(k) {
		return fail(errors.New("the box has no /proc of its own: `mount proc` (or `pivot_root` with a PID namespace) first"))
	}
	if m := mountAt(mounts, in("/proc/sys")); m != nil {
		return fail(errors.New("/proc/sys is a mount point already: the box is masked"))
	}
	null := in("/dev/null")
	if st, err := inroot.Stat(k.Path("/"), null); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		null = "/dev/null"
		if root == "/" {
			return fail(errors.New("the box has no /dev/null to mask files with: `mount dev` first"))
		}
	}
	var done []string
	undo := func(err error) (*step.Step, error) {
		for i := len(done) - 1; i >= 0; i-- {
			if uerr := umountCall(k, st, done[i], unix.MNT_DETACH); uerr != nil {
				err = errors.Join(err, uerr)
			}
		}
		return fail(err)
	}
	var skipped []string
	for _, p := range MaskedPaths {
		host := in(p)
		fi, err := inroot.Lstat(k.Path("/"), host)
		switch {
		case errors.Is(err, os.ErrNotExist):
			skipped = append(skipped, p)
			continue
		case err != nil:
			return undo(fmt.Errorf("lstat %s: %w", p, err))
		case fi.Mode&unix.S_IFMT == unix.S_IFDIR:
			err = mountCall(k, st, "tmpfs", host, "tmpfs", maskFlags, "")
			st.Shell = append(st.Shell, "mount -t tmpfs -o ro,nosuid,nodev,noexec tmpfs "+shellQuote(host))
		default:
			err = mountCall(k, st, null, host, "", unix.MS_BIND, "")
			st.Shell = append(st.Shell, "mount --bind "+shellQuote(null)+" "+shellQuote(host))
		}
		if err != nil {
			return undo(err)
		}
		done = append(done, host)
	}
	for _, p := range ReadonlyPaths {
		host := in(p)
		if _, err := inroot.Lstat(k.Path("/"), host); errors.Is(err, os.ErrNotExist) {
			skipped = append(skipped, p)
			continue
		}
		if err := mountCall(k, st, host, host, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return undo(err)
		}
		done = append(done, host)
		if err := remountReadOnly(k, st, host, false); err != nil {
			return undo(err)
		}
		st.Shell = append(st.Shell, "mount --rbind "+shellQuote(host)+" "+shellQuote(host), "mount -o remount,bind,ro "+shellQuote(host))
	}
	st.Undo = fmt.Sprintf("umount each of the %d mounts, last first", len(done))
	if isPlanning(k) {
		st.Undo = fmt.Sprintf("umount each of the %d mounts, last first", len(MaskedPaths)+len(ReadonlyPaths)-len(skipped))
	}
	st.Tell("masked Docker's paths of /proc and /sys and made /proc/sys, /proc/sysrq-trigger… read-only: the box's commands no longer reach those host settings through them",
		"will mask Docker's paths of /proc and /sys and make /proc/sys, /proc/sysrq-trigger… read-only")
	if len(skipped) > 0 {
		st.Notes = append(st.Notes, fmt.Sprintf("not on this kernel, skipped as runc skips them: %v", skipped))
	}
	st.Notes = append(st.Notes, "a process with CAP_SYS_ADMIN can unmount or remount these again: `caps docker` takes it away")
	return st, nil
}

// remountReadOnly makes the bind at p read-only, keeping the flags the
// mount has (a remount that drops a locked one fails with EPERM):
// mount(2) with MS_REMOUNT|MS_BIND|MS_RDONLY, the top mount only, as runc
// does for Docker's read-only paths. With recursive, where the kernel has
// mount_setattr(2), the bind and every mount under it turn read-only at
// once (AT_RECURSIVE, MOUNT_ATTR_RDONLY).
func remountReadOnly(k Kernel, st *step.Step, p string, recursive bool) error {
	if recursive {
		attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		err := k.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, attr)
		if !errors.Is(err, unix.ENOSYS) {
			return st.Do(fmt.Sprintf("mount_setattr(AT_FDCWD, %s, AT_RECURSIVE, {attr_set=MOUNT_ATTR_RDONLY})", step.Quote(p)),
				func() error { return err })
		}
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	var sfs unix.Statfs_t
	if err := unix.Statfs(k.Path(p), &sfs); err == nil {
		for _, f := range [][2]uintptr{{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC}} {
			if uintptr(sfs.Flags)&f[0] != 0 {
				flags |= f[1]
			}
		}
	}
	return mountCall(k, st, "", p, "", flags, "")
}
