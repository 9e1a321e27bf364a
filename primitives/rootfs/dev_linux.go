package rootfs

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// devNodes are the character devices of a minimal /dev, with the numbers
// the kernel gives them (Documentation/admin-guide/devices.txt).
var devNodes = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// devLinks are the symlinks programs expect in /dev.
var devLinks = []struct{ name, target string }{
	{"ptmx", "pts/ptmx"}, // the new devpts instance's own multiplexer (devpts.rst)
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
}

// Kept are detached mounts a box in a user namespace of its own takes
// before pivot_root or chroot, held as fds by its executor, for the
// `mount dev` and `mount sys` that come after, when what they need is out
// of reach:
//
//   - Devices: the host's nodes of a minimal /dev, by name, each a copy
//     of its mount (open_tree(2) with OPEN_TREE_CLONE). In a user
//     namespace mknod(2) of a device is refused whatever the box's root
//     holds (it needs CAP_MKNOD in the host's user namespace), so a /dev
//     there binds the host's nodes, as rootless podman and bubblewrap do.
//   - Sysfs: a new sysfs, read-only, of the box's network namespace
//     (fsopen(2), fsmount(2)). In a user namespace the kernel makes one
//     only while a sysfs is fully visible in the mount namespace
//     (mount_too_revealing(), fs/namespace.c): the host's, until
//     pivot_root detaches it. HasSysfs says whether there is one.
type Kept struct {
	Devices  map[string]int
	Sysfs    int
	HasSysfs bool
}

// Keep takes the copies of the host's devices, and, when the box has a
// network namespace of its own (withSysfs: the only one a user namespace
// may mount a sysfs of), a sysfs, each call recorded in st; what it
// cannot take is left out, and the step that needs it says so.
func Keep(k Kernel, st *step.Step, withSysfs bool) *Kept {
	kept := &Kept{Devices: map[string]int{}}
	for _, n := range devNodes {
		p := "/dev/" + n.name
		var fd int
		call := fmt.Sprintf("open_tree(AT_FDCWD, %s, OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC)", step.Quote(p))
		if st.Do(call, func() (err error) {
			fd, err = k.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			return err
		}) == nil {
			kept.Devices[n.name] = fd
		}
	}
	if withSysfs {
		kept.Sysfs, kept.HasSysfs = keepSysfs(k, st)
	}
	return kept
}

// keepSysfs makes a detached read-only sysfs (Kept.Sysfs).
func keepSysfs(k Kernel, st *step.Step) (int, bool) {
	var fd int
	if st.Do(`fsopen("sysfs", FSOPEN_CLOEXEC)`, func() (err error) { fd, err = k.Fsopen("sysfs", unix.FSOPEN_CLOEXEC); return err }) != nil {
		return -1, false
	}
	defer k.Close(fd)
	if st.Do(fmt.Sprintf("fsconfig(%d, FSCONFIG_CMD_CREATE, NULL, NULL, 0)", fd), func() error { return k.FsconfigCreate(fd) }) != nil {
		return -1, false
	}
	var mfd int
	const attr = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC
	if st.Do(fmt.Sprintf("fsmount(%d, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY|MOUNT_ATTR_NOSUID|MOUNT_ATTR_NODEV|MOUNT_ATTR_NOEXEC)", fd), func() (err error) {
		mfd, err = k.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
		return err
	}) != nil {
		return -1, false
	}
	return mfd, true
}

// Clone is a copy of kept for a plan, which uses up only its own copy.
func (kept *Kept) Clone() *Kept {
	if kept == nil {
		return nil
	}
	c := *kept
	c.Devices = maps.Clone(kept.Devices)
	return &c
}

// Close closes what is still kept (the step that moved the root failed).
func (kept *Kept) Close(k Kernel) {
	if kept == nil {
		return
	}
	for _, fd := range kept.Devices {
		k.Close(fd)
	}
	if kept.HasSysfs {
		k.Close(kept.Sysfs)
	}
}

// attach moves the kept detached mount fd onto p, recorded in st.
func attach(k Kernel, st *step.Step, fd int, p, what string) error {
	call := fmt.Sprintf("move_mount(%d, \"\", AT_FDCWD, %s, MOVE_MOUNT_F_EMPTY_PATH)   # %s, kept at pivot_root", fd, step.Quote(p), what)
	return st.Do(call, func() error { return k.MoveMount(fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH) })
}

// devOptions are runc's for the /dev tmpfs, with nr_inodes= as `mount
// tmpfs` gets (tmpfsInodes): root-owned and mode 755, it is still the
// box's uid 0 that fills it, with no capability at all (ut35 G1).
var devOptions = "mode=755,size=65536k,nr_inodes=" + strconv.Itoa(tmpfsInodes)

// MountDev builds a minimal /dev at target inside root, as runc does: a
// tmpfs holding null, zero, random, urandom and tty, a private devpts at
// pts and the usual symlinks. Inside a user namespace mknod(2) of a device
// is refused (EPERM), so each node becomes a bind of the host's instead:
// of the host's /dev while it is in reach (before pivot_root or chroot),
// else of the copy kept (KeepHostDevices, which MountDevKept is given).
func MountDev(k Kernel, root, target string) (*step.Step, error) {
	return MountDevKept(k, root, target, nil)
}

// MountDevKept is MountDev with what the box kept at pivot_root or chroot
// (nil: nothing); each device copy it binds is used up and dropped.
func MountDevKept(k Kernel, root, target string, kept *Kept) (*step.Step, error) {
	st := &step.Step{Command: "mount dev " + target, Man: []string{"mount(2)", "mknod(2)", "tmpfs(5)", "pts(4)"}}
	fail := func(err error) (*step.Step, error) { return st, fmt.Errorf("mount dev: %w", err) }
	dev, created, err := mountSimple(k, st, root, target, "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, devOptions)
	if err != nil {
		return fail(err)
	}
	st.Shell = append(st.Shell, "mount -t tmpfs -o nosuid,strictatime,"+devOptions+" tmpfs "+shellQuote(dev))
	if err := fillDev(k, st, dev, root == "/", kept); err != nil {
		if uerr := umountCall(k, st, dev, unix.MNT_DETACH); uerr != nil {
			err = errors.Join(err, uerr)
		}
		removeAll(k, created)
		return fail(err)
	}
	const made = ": null zero random urandom tty, a private devpts at pts and ptmx, fd, stdin, stdout, stderr links"
	st.Tell("made a minimal /dev at "+target+made, "will make a minimal /dev at "+target+made)
	st.Undo = fmt.Sprintf("umount %s; umount %s", shellQuote(filepath.Join(dev, "pts")), shellQuote(dev))
	return st, nil
}

// bindHostDevice puts the host's device name (numbers rdev) at p, an
// empty file made for it: a bind of the host's node before the box's root
// moved; after, a move of the copy kept for it, or, once that is used, a
// bind of the node an earlier `mount dev` put at /dev/name.
func bindHostDevice(k Kernel, st *step.Step, p, name string, rdev uint64, moved bool, kept *Kept) error {
	host := "/dev/" + name
	fd, ok := 0, false
	if kept != nil {
		fd, ok = kept.Devices[name]
	}
	if moved && !ok && isCharDevice(k.Path(host), rdev) {
		moved = false // the box's own /dev/name is the host's node
	}
	if moved && !ok {
		return fmt.Errorf("mknod(2) of %s is refused in a user namespace, so this /dev binds the host's node, and after pivot_root or chroot the host's /dev is out of reach: no copy of %s was kept for it (the box's root changed before it had a user namespace, or an earlier `mount dev` used the copy): build a new box with `unshare mnt`, `mount overlay`, then `pivot_root` and `mount dev`", host, host)
	}
	if err := createFile(k, st, p); err != nil {
		return err
	}
	if !moved {
		if err := mountCall(k, st, host, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mknod refused in a user namespace, and binding the host's %s failed: %w", host, err)
		}
		st.Shell = append(st.Shell, fmt.Sprintf("touch %s; mount --bind %s %s", shellQuote(p), host, shellQuote(p)))
		return nil
	}
	if err := attach(k, st, fd, p, "the host's "+host); err != nil {
		return fmt.Errorf("mknod refused in a user namespace, and attaching the copy of the host's %s kept at pivot_root failed: %w", host, err)
	}
	delete(kept.Devices, name)
	k.Close(fd)
	st.Shell = append(st.Shell, fmt.Sprintf("touch %s; mount --bind %s %s   # before pivot_root, from the host's /dev", shellQuote(p), host, shellQuote(p)))
	return nil
}

// isCharDevice says whether p is the character device rdev.
func isCharDevice(p string, rdev uint64) bool {
	var s unix.Stat_t
	return unix.Stat(p, &s) == nil && s.Mode&unix.S_IFMT == unix.S_IFCHR && s.Rdev == rdev
}

// fillDev creates the nodes, devpts and links in the fresh tmpfs dev;
// moved says the box's root has changed, so the host's /dev is out of
// reach and only the copies in kept can be bound.
func fillDev(k Kernel, st *step.Step, dev string, moved bool, kept *Kept) error {
	for _, n := range devNodes {
		p := filepath.Join(dev, n.name)
		rdev := unix.Mkdev(n.major, n.minor)
		call := fmt.Sprintf("mknod(%s, S_IFCHR|0666, makedev(%#x, %#x))", step.Quote(p), n.major, n.minor)
		err := st.Do(call, func() error { return k.Mknod(p, unix.S_IFCHR|0o666, int(rdev)) })
		switch {
		case err == nil:
			if err := chmodIfCut(k, st, p, 0o666); err != nil {
				return err
			}
			st.Shell = append(st.Shell, fmt.Sprintf("mknod -m 666 %s c %d %d", shellQuote(p), n.major, n.minor))
		case step.Errno(err) == unix.EPERM:
			if err := bindHostDevice(k, st, p, n.name, rdev, moved, kept); err != nil {
				return err
			}
		default:
			return err
		}
	}
	pts := filepath.Join(dev, "pts")
	if err := st.Do(fmt.Sprintf("mkdir(%s, 0755)", step.Quote(pts)), func() error { return k.Mkdir(pts, 0o755) }); err != nil {
		return err
	}
	// newinstance: the box's terminals are its own, not the host's /dev/pts.
	const ptsOpts = "newinstance,ptmxmode=0666,mode=0620"
	if err := mountCall(k, st, "devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts); err != nil {
		return err
	}
	st.Shell = append(st.Shell, "mkdir "+shellQuote(pts), "mount -t devpts -o "+ptsOpts+" devpts "+shellQuote(pts))
	for _, l := range devLinks {
		p := filepath.Join(dev, l.name)
		if err := st.Do(fmt.Sprintf("symlink(%s, %s)", step.Quote(l.target), step.Quote(p)), func() error { return k.Symlink(l.target, p) }); err != nil {
			return err
		}
		st.Shell = append(st.Shell, "ln -s "+l.target+" "+shellQuote(p))
	}
	return nil
}
