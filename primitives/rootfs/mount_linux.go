package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// Flags of the usual container mounts, as runc and Docker use them.
const (
	procFlags  = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	sysFlags   = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RDONLY
	tmpfsFlags = unix.MS_NOSUID | unix.MS_NODEV
)

// MountProc mounts a proc filesystem at target inside root. A proc shows
// the PID namespace of the process that mounts it, so a box with its own
// PID namespace must mount it from its PID 1 (PivotRoot does).
func MountProc(k Kernel, root, target string) (*step.Step, error) {
	st := &step.Step{Command: "mount proc " + target, Man: []string{"mount(2)", "proc(5)"}}
	host, _, err := mountSimple(k, st, root, target, "proc", "proc", procFlags, "")
	if err != nil {
		return st, fmt.Errorf("mount proc: %w", err)
	}
	st.Tell("mounted proc at "+target+": ps, top and /proc/PID read it", "will mount proc at "+target+": ps, top and /proc/PID will read it")
	st.Shell = []string{"mount -t proc -o nosuid,nodev,noexec proc " + shellQuote(host)}
	st.Undo = "umount " + shellQuote(host)
	var self, children unix.Stat_t
	if unix.Stat(k.Proc()+"/ns/pid", &self) == nil && unix.Stat(k.Proc()+"/ns/pid_for_children", &children) == nil &&
		self.Ino != children.Ino {
		st.Notes = append(st.Notes, fmt.Sprintf(
			"this proc shows pid:[%d], the PID namespace of the process that mounted it, not pid:[%d] its children enter: mount it from the box's PID 1",
			self.Ino, children.Ino))
	}
	return st, nil
}

// MountSys mounts sysfs read-only at target inside root, as Docker does:
// the box can read devices and its network interfaces, not retune the host.
func MountSys(k Kernel, root, target string) (*step.Step, error) {
	return MountSysKept(k, root, target, nil)
}

// MountSysKept is MountSys with what the box kept at pivot_root (nil:
// nothing): where the kernel refuses a new sysfs after pivot_root in a
// user namespace, the one made before it (Kept.Sysfs) is attached.
func MountSysKept(k Kernel, root, target string, kept *Kept) (*step.Step, error) {
	st := &step.Step{Command: "mount sys " + target, Man: []string{"mount(2)", "sysfs(5)"}}
	host, _, err := mountSimple(k, st, root, target, "sysfs", "sysfs", sysFlags, "")
	if err != nil && step.Errno(err) == unix.EPERM && root == "/" && kept != nil && kept.HasSysfs {
		host, err = attachKeptSysfs(k, st, target, kept)
	}
	if err != nil {
		return st, fmt.Errorf("mount sys: %w", err)
	}
	st.Tell("mounted sysfs read-only at "+target+", as Docker mounts it: the box reads devices and settings, and writes none of the host's",
		"will mount sysfs read-only at "+target+", as Docker mounts it: the box will read devices and settings, and write none of the host's")
	st.Shell = []string{"mount -t sysfs -o ro,nosuid,nodev,noexec sysfs " + shellQuote(host)}
	st.Undo = "umount " + shellQuote(host)
	st.Notes = []string{"sysfs shows the network devices of the network namespace of the process that mounts it"}
	return st, nil
}

// attachKeptSysfs puts the sysfs kept at pivot_root at target, and uses
// it up.
func attachKeptSysfs(k Kernel, st *step.Step, target string, kept *Kept) (string, error) {
	host, created, err := resolveInRoot(k, st, "/", target, true)
	if err != nil {
		return "", err
	}
	if err := attach(k, st, kept.Sysfs, host, "a sysfs of the box's network namespace"); err != nil {
		removeAll(k, created)
		return "", err
	}
	k.Close(kept.Sysfs)
	kept.HasSysfs = false
	st.Notes = append(st.Notes, "the kernel refuses a new sysfs in a user namespace once the host's is out of sight (mount_too_revealing()): this one was made at pivot_root, in the box's network namespace, and attached now")
	return host, nil
}

// tmpfsInodes is the nr_inodes= of the 64 MiB tmpfs of `mount tmpfs`
// and `mount dev`, by the rule of a box's upper tmpfs (primitives'
// upperInodes, ut34 F6): one per 4 KiB page of size=. Without it the
// kernel gives each ~half the RAM's pages in inodes, and every empty file,
// which takes none of size=, pins ~1 KiB of slab: a box's uid 0 needs no
// capability to make 3 M of them in its /dev (ut35 G1). No floor as the
// upper's: 16384 is room enough for a /dev (a dozen nodes) or a scratch
// dir, and keeps the slab within ~1/4 of size= more.
const tmpfsInodes = (64 << 20) / (4 << 10)

// tmpfsOptions: world-writable with the sticky bit like /tmp, and a size
// limit. Without one a tmpfs may take half the host's memory, and a box
// without a memory cgroup would fill it at the host's expense; inodes
// are bounded too (tmpfsInodes).
var tmpfsOptions = "mode=1777,size=64m,nr_inodes=" + strconv.Itoa(tmpfsInodes)

// MountTmpfs mounts an empty tmpfs at target inside root (tmpfsOptions).
func MountTmpfs(k Kernel, root, target string) (*step.Step, error) {
	st := &step.Step{Command: "mount tmpfs " + target, Man: []string{"mount(2)", "tmpfs(5)"}}
	host, _, err := mountSimple(k, st, root, target, "tmpfs", "tmpfs", tmpfsFlags, tmpfsOptions)
	if err != nil {
		return st, fmt.Errorf("mount tmpfs: %w", err)
	}
	st.Tell("mounted a tmpfs at "+target+": files there live in memory and vanish with the mount",
		"will mount a tmpfs at "+target+": files there will live in memory and vanish with the mount")
	st.Shell = []string{"mount -t tmpfs -o nosuid,nodev," + tmpfsOptions + " tmpfs " + shellQuote(host)}
	st.Undo = "umount " + shellQuote(host)
	return st, nil
}

// MountBind binds the host path src at target inside root, read-only
// when readOnly: a volume. A bind ignores MS_RDONLY, so read-only takes a
// second call: mount_setattr(2) with AT_RECURSIVE, which makes the bind
// and every mount under it read-only, as runc does for rro, or where the
// kernel lacks it a remount of the bind (mount(2), "Creating a bind mount").
// Host paths are out of the box's reach after pivot_root: bind volumes before.
func MountBind(k Kernel, src, root, target string, readOnly bool) (*step.Step, error) {
	cmd := "mount bind " + src + " " + target
	if readOnly {
		cmd += ":ro"
	}
	st := &step.Step{Command: cmd, Man: []string{"mount(2)"}}
	fail := func(err error) (*step.Step, error) { return st, fmt.Errorf("mount bind %s: %w", src, err) }
	if err := checkMountNamespace(k); err != nil {
		return fail(err)
	}
	fi, err := os.Stat(k.Path(src))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && root == "/" {
			err = fmt.Errorf("%w (after pivot_root the host's files are out of reach: bind volumes before pivot_root)", err)
		}
		return fail(fmt.Errorf("bind source: %w", err))
	}
	host, created, err := resolveInRoot(k, st, root, target, fi.IsDir())
	if err != nil {
		return fail(err)
	}
	if err := mountCall(k, st, src, host, "", unix.MS_BIND, ""); err != nil {
		removeAll(k, created)
		return fail(err)
	}
	st.Shell = []string{"mount --bind " + shellQuote(src) + " " + shellQuote(host)}
	st.Undo = "umount " + shellQuote(host)
	st.Tell(fmt.Sprintf("bound the host's %s at %s: the box and the host see the same files", src, target),
		fmt.Sprintf("will bind the host's %s at %s: the box and the host will see the same files", src, target))
	if !readOnly {
		return st, nil
	}
	if err := remountReadOnly(k, st, host, true); err != nil {
		if uerr := umountCall(k, st, host, unix.MNT_DETACH); uerr != nil {
			err = errors.Join(err, uerr)
		}
		removeAll(k, created)
		return fail(err)
	}
	st.Shell = append(st.Shell, "mount -o remount,bind,ro "+shellQuote(host)+"   # mount_setattr(2) makes the mounts under it read-only too")
	st.Tell(fmt.Sprintf("bound the host's %s read-only at %s: the box can read it, writes fail with EROFS", src, target),
		fmt.Sprintf("will bind the host's %s read-only at %s: the box will read it, and its writes will fail with EROFS", src, target))
	return st, nil
}

// mountSimple mounts a filesystem that needs no source at target inside
// root and returns the host path it mounted on and the dirs it created.
func mountSimple(k Kernel, st *step.Step, root, target, source, fstype string, flags uintptr, data string) (string, []string, error) {
	if err := checkMountNamespace(k); err != nil {
		return "", nil, err
	}
	host, created, err := resolveInRoot(k, st, root, target, true)
	if err != nil {
		return "", nil, err
	}
	if err := mountCall(k, st, source, host, fstype, flags, data); err != nil {
		removeAll(k, created)
		return "", nil, err
	}
	return host, created, nil
}

// resolveInRoot returns the host path of target inside root, creating
// what is missing: directories, and the last element as an empty file
// when dir is false (a bind target for a file). Each element is resolved
// with openat2(RESOLVE_IN_ROOT), which treats root as "/": an image's
// absolute or ../ symlink stays inside the box (openat2(2)).
func resolveInRoot(k Kernel, st *step.Step, root, target string, dir bool) (string, []string, error) {
	if !path.IsAbs(target) {
		return "", nil, fmt.Errorf("%s: a path inside the box must start with /", target)
	}
	target = path.Clean(target)
	if root == "/" {
		// The kernel already resolves inside the box's root.
		_, err := os.Stat(k.Path(target))
		switch {
		case err == nil:
			return target, nil, nil
		case !errors.Is(err, os.ErrNotExist):
			return "", nil, err
		case dir:
			created, err := mkdirs(k, st, target, 0o755)
			return target, created, err
		}
		created, err := mkdirs(k, st, path.Dir(target), 0o755)
		if err != nil {
			return "", nil, err
		}
		if err := createFile(k, st, target); err != nil {
			removeAll(k, created)
			return "", nil, err
		}
		return target, append(created, target), nil
	}
	rootFD, err := unix.Open(k.Path(root), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil && isPlanning(k) {
		// No root to look in yet (no overlay): plan the mount on the path.
		return path.Join(root, target), nil, nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rootFD)
	var created []string
	host := root
	if target == "/" {
		return host, nil, nil
	}
	elems := strings.Split(target[1:], "/")
	for i := range elems {
		rel := strings.Join(elems[:i+1], "/")
		fd, err := unix.Openat2(rootFD, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT})
		if errors.Is(err, unix.ENOENT) {
			last := i == len(elems)-1
			p := filepath.Join(host, elems[i])
			if last && !dir {
				err = createFile(k, st, p)
			} else {
				err = st.Do(fmt.Sprintf("mkdir(%s, 0755)", step.Quote(p)), func() error { return k.Mkdir(p, 0o755) })
			}
			if err != nil {
				removeAll(k, created)
				return "", nil, err
			}
			created = append(created, p)
			host = p
			continue
		}
		if err != nil {
			removeAll(k, created)
			return "", nil, fmt.Errorf("resolve %s in %s: %w", target, root, err)
		}
		host, err = os.Readlink(fmt.Sprintf("/proc/thread-self/fd/%d", fd))
		unix.Close(fd)
		if err != nil {
			removeAll(k, created)
			return "", nil, fmt.Errorf("resolve %s in %s: %w", target, root, err)
		}
	}
	return host, created, nil
}

// createFile creates an empty file to bind a file onto.
func createFile(k Kernel, st *step.Step, p string) error {
	return st.Do(fmt.Sprintf("mknod(%s, S_IFREG|0644)", step.Quote(p)), func() error {
		return k.Mknod(p, unix.S_IFREG|0o644, 0)
	})
}
