package rootfs

import (
	"errors"
	"fmt"
	"path/filepath"

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

// MountDev builds a minimal /dev at target inside root, as runc does: a
// tmpfs holding null, zero, random, urandom and tty, a private devpts at
// pts and the usual symlinks. Inside a user namespace mknod(2) of a device
// is refused (EPERM), so each node becomes a bind of the host's instead,
// which needs the host's /dev in reach: before pivot_root.
func MountDev(k Kernel, root, target string) (*step.Step, error) {
	st := &step.Step{Command: "mount dev " + target, Man: []string{"mount(2)", "mknod(2)", "tmpfs(5)", "pts(4)"}}
	fail := func(err error) (*step.Step, error) { return st, fmt.Errorf("mount dev: %w", err) }
	dev, created, err := mountSimple(k, st, root, target, "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k")
	if err != nil {
		return fail(err)
	}
	st.Shell = append(st.Shell, "mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs "+shellQuote(dev))
	if err := fillDev(k, st, dev); err != nil {
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

// fillDev creates the nodes, devpts and links in the fresh tmpfs dev.
func fillDev(k Kernel, st *step.Step, dev string) error {
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
			if err := createFile(k, st, p); err != nil {
				return err
			}
			host := "/dev/" + n.name
			if err := mountCall(k, st, host, p, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("mknod refused in a user namespace, and binding the host's %s failed: %w", host, err)
			}
			st.Shell = append(st.Shell, fmt.Sprintf("touch %s; mount --bind %s %s", shellQuote(p), host, shellQuote(p)))
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
