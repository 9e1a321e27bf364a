package rootfs

import (
	"bufio"
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

// Plans of the filesystem steps: the record each will write, every result
// "?" (step.NotRun), built with the same call formats, flags and shell
// lines as the steps. They run in the session, outside the box: look is
// where the box's root can be seen from the host (/proc/PID/root…), read
// to tell which directories a step will have to create.

// PlanMountOverlay is the record MountOverlay will write; userns says the
// box has a user namespace of its own (overlayfs then needs userxattr).
func PlanMountOverlay(layers []Layer, upper, work, merged string, userns bool) (*step.Step, error) {
	if len(layers) == 0 {
		return nil, errors.New("mount overlay: name at least one layer, bottom first (`layers` lists them)")
	}
	var names []string
	for _, l := range layers {
		names = append(names, l.Name)
	}
	st := &step.Step{Command: "mount overlay " + strings.Join(names, " "), Man: []string{"mount(2)", "overlayfs"}}
	lowers := make([]string, len(layers))
	for i, l := range layers {
		lowers[len(layers)-1-i] = l.Dir
	}
	req, err := overlayOptions(lowers, upper, work, userns, os.Getpagesize(), kernelRelease())
	if err != nil {
		return nil, fmt.Errorf("mount overlay: %w", err)
	}
	opts := req.opts
	const fd, mfd = 3, 4
	switch req.how {
	case overlayMount:
		st.Plan(step.MountCall("overlay", merged, "overlay", 0, opts))
	case overlayFsconfig:
		st.Plan(`fsopen("overlay", FSOPEN_CLOEXEC)`)
		set := func(key, value string) {
			st.Plan(fmt.Sprintf("fsconfig(%d, FSCONFIG_SET_STRING, %s, %s, 0)", fd, step.Quote(key), step.Quote(value)))
		}
		set("source", "overlay")
		for _, l := range req.lowers {
			set("lowerdir+", l)
		}
		set("upperdir", upper)
		set("workdir", work)
		if userns {
			st.Plan(fmt.Sprintf(`fsconfig(%d, FSCONFIG_SET_FLAG, "userxattr", NULL, 0)`, fd))
		}
		st.Plan(fmt.Sprintf("fsconfig(%d, FSCONFIG_CMD_CREATE, NULL, NULL, 0)", fd))
		st.Plan(fmt.Sprintf("fsmount(%d, FSMOUNT_CLOEXEC, 0)", fd))
		st.Plan(fmt.Sprintf(`move_mount(%d, "", AT_FDCWD, %s, MOVE_MOUNT_F_EMPTY_PATH)`, mfd, step.Quote(merged)))
		st.Notes = append(st.Notes, fmt.Sprintf(
			"the options take %d bytes, more than the one page (%d) mount(2) copies: the layers will be added one by one with fsconfig(lowerdir+)",
			len(opts), os.Getpagesize()))
	case overlayRelative:
		st.Plan(`openat(AT_FDCWD, ".", O_PATH|O_DIRECTORY|O_CLOEXEC)`)
		st.Plan("chdir(" + step.Quote(req.dir) + ")")
		st.Plan(step.MountCall("overlay", merged, "overlay", 0, opts))
		st.Plan(fmt.Sprintf("fchdir(%d)", fd))
		st.Notes = append(st.Notes, fmt.Sprintf(
			"with host paths the options would take more than the one page (%d) mount(2) copies, and this kernel (before %s) cannot add layers one by one with fsconfig(lowerdir+): "+
				"the layers will be given relative to %s, the box's working directory for the mount(2) only, as Docker's overlay2 does (mountinfo shows them relative)",
			os.Getpagesize(), lowerdirPlusRelease, req.dir))
	}
	describeOverlay(st, layers, names, req, upper, work, merged)
	st.MarkNotRun() // the summary in the future tense
	return st, nil
}

// PlanMountProc is the record MountProc(root, target) will write.
func PlanMountProc(root, target, look string) (*step.Step, error) {
	st := &step.Step{Command: "mount proc " + target, Man: []string{"mount(2)", "proc(5)"}}
	host, err := planResolve(st, root, target, look, true)
	if err != nil {
		return nil, fmt.Errorf("mount proc: %w", err)
	}
	st.Plan(step.MountCall("proc", host, "proc", procFlags, ""))
	st.Summary = "will mount proc at " + target + ": ps, top and /proc/PID will read it"
	st.Shell = []string{"mount -t proc -o nosuid,nodev,noexec proc " + shellQuote(host)}
	st.Undo = "umount " + shellQuote(host)
	return st, nil
}

// PlanMountSys is the record MountSys(root, target) will write.
func PlanMountSys(root, target, look string) (*step.Step, error) {
	st := &step.Step{Command: "mount sys " + target, Man: []string{"mount(2)", "sysfs(5)"}}
	host, err := planResolve(st, root, target, look, true)
	if err != nil {
		return nil, fmt.Errorf("mount sys: %w", err)
	}
	st.Plan(step.MountCall("sysfs", host, "sysfs", sysFlags, ""))
	st.Summary = "will mount sysfs read-only at " + target
	st.Shell = []string{"mount -t sysfs -o ro,nosuid,nodev,noexec sysfs " + shellQuote(host)}
	st.Undo = "umount " + shellQuote(host)
	st.Notes = []string{"sysfs shows the network devices of the network namespace of the process that mounts it"}
	return st, nil
}

// PlanMountTmpfs is the record MountTmpfs(root, target) will write.
func PlanMountTmpfs(root, target, look string) (*step.Step, error) {
	st := &step.Step{Command: "mount tmpfs " + target, Man: []string{"mount(2)", "tmpfs(5)"}}
	host, err := planResolve(st, root, target, look, true)
	if err != nil {
		return nil, fmt.Errorf("mount tmpfs: %w", err)
	}
	st.Plan(step.MountCall("tmpfs", host, "tmpfs", tmpfsFlags, tmpfsOptions))
	st.Summary = "will mount a tmpfs at " + target + ": files there will live in memory and vanish with the mount"
	st.Shell = []string{"mount -t tmpfs -o nosuid,nodev," + tmpfsOptions + " tmpfs " + shellQuote(host)}
	st.Undo = "umount " + shellQuote(host)
	return st, nil
}

// PlanMountBind is the record MountBind(src, root, target, readOnly) will write.
func PlanMountBind(src, root, target string, readOnly bool, look string) (*step.Step, error) {
	cmd := "mount bind " + src + " " + target
	if readOnly {
		cmd += ":ro"
	}
	st := &step.Step{Command: cmd, Man: []string{"mount(2)"}}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("mount bind %s: bind source: %w", src, err)
	}
	host, err := planResolve(st, root, target, look, fi.IsDir())
	if err != nil {
		return nil, fmt.Errorf("mount bind %s: %w", src, err)
	}
	st.Plan(step.MountCall(src, host, "", unix.MS_BIND, ""))
	st.Shell = []string{"mount --bind " + shellQuote(src) + " " + shellQuote(host)}
	st.Undo = "umount " + shellQuote(host)
	st.Summary = fmt.Sprintf("will bind the host's %s at %s: the box and the host will see the same files", src, target)
	if !readOnly {
		return st, nil
	}
	// The bind carries the source mount's locked flags; the remount keeps them.
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	var sfs unix.Statfs_t
	if unix.Statfs(src, &sfs) == nil {
		for _, f := range []struct{ st, ms uintptr }{
			{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		} {
			if uintptr(sfs.Flags)&f.st != 0 {
				flags |= f.ms
			}
		}
	}
	st.Plan(step.MountCall("", host, "", flags, ""))
	st.Shell = append(st.Shell, "mount -o remount,bind,ro "+shellQuote(host))
	st.Summary = fmt.Sprintf("will bind the host's %s read-only at %s: the box will read it, and its writes will fail with EROFS", src, target)
	return st, nil
}

// PlanMountDev is the record MountDev(root, target) will write; userns:
// the box has a user namespace of its own, where mknod of a device is
// refused and each node becomes a bind of the host's.
func PlanMountDev(root, target, look string, userns bool) (*step.Step, error) {
	st := &step.Step{Command: "mount dev " + target, Man: []string{"mount(2)", "mknod(2)", "tmpfs(5)", "pts(4)"}}
	dev, err := planResolve(st, root, target, look, true)
	if err != nil {
		return nil, fmt.Errorf("mount dev: %w", err)
	}
	st.Plan(step.MountCall("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_STRICTATIME, "mode=755,size=65536k"))
	st.Shell = append(st.Shell, "mount -t tmpfs -o nosuid,strictatime,mode=755,size=65536k tmpfs "+shellQuote(dev))
	cut := umask()&0o666 != 0
	for _, n := range devNodes {
		p := filepath.Join(dev, n.name)
		if userns {
			st.Plan(fmt.Sprintf("mknod(%s, S_IFREG|0644)", step.Quote(p)))
			st.Plan(step.MountCall("/dev/"+n.name, p, "", unix.MS_BIND, ""))
			st.Shell = append(st.Shell, fmt.Sprintf("touch %s; mount --bind %s %s", shellQuote(p), "/dev/"+n.name, shellQuote(p)))
			continue
		}
		st.Plan(fmt.Sprintf("mknod(%s, S_IFCHR|0666, makedev(%#x, %#x))", step.Quote(p), n.major, n.minor))
		if cut {
			st.Plan(fmt.Sprintf("chmod(%s, %#o)", step.Quote(p), 0o666))
		}
		st.Shell = append(st.Shell, fmt.Sprintf("mknod -m 666 %s c %d %d", shellQuote(p), n.major, n.minor))
	}
	pts := filepath.Join(dev, "pts")
	st.Plan(fmt.Sprintf("mkdir(%s, 0755)", step.Quote(pts)))
	const ptsOpts = "newinstance,ptmxmode=0666,mode=0620"
	st.Plan(step.MountCall("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, ptsOpts))
	st.Shell = append(st.Shell, "mkdir "+shellQuote(pts), "mount -t devpts -o "+ptsOpts+" devpts "+shellQuote(pts))
	for _, l := range devLinks {
		p := filepath.Join(dev, l.name)
		st.Plan(fmt.Sprintf("symlink(%s, %s)", step.Quote(l.target), step.Quote(p)))
		st.Shell = append(st.Shell, "ln -s "+l.target+" "+shellQuote(p))
	}
	st.Summary = "will make a minimal /dev at " + target + ": null zero random urandom tty, a private devpts at pts and ptmx, fd, stdin, stdout, stderr links"
	st.Undo = fmt.Sprintf("umount %s; umount %s", shellQuote(pts), shellQuote(dev))
	return st, nil
}

// PlanPivotRoot is the record PivotRoot(newRoot, withProc) will write.
func PlanPivotRoot(newRoot string, withProc bool, look string) (*step.Step, error) {
	st := &step.Step{Command: "pivot_root", Man: []string{"pivot_root(2)", "mount(2)", "mount_namespaces(7)"}}
	st.Plan(step.MountCall("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	st.Plan(step.MountCall(newRoot, newRoot, "", unix.MS_BIND|unix.MS_REC, ""))
	st.Plan("chdir(" + step.Quote(newRoot) + ")")
	st.Plan(`pivot_root(".", ".")`)
	if withProc {
		// Before the old root goes: see PivotRoot.
		ps, err := PlanMountProc("/", "/proc", look)
		if err != nil {
			return nil, err
		}
		st.Merge(ps)
	}
	st.Plan(fmt.Sprintf("umount2(%s, %s)", step.Quote("."), step.UmountFlags(unix.MNT_DETACH)))
	st.Plan(`chdir("/")`)
	st.Shell = pivotRootShell(newRoot, withProc)
	st.Summary = "will make the overlay at " + newRoot + " the box's /, and detach the host's root from the box"
	st.Notes = append(pivotRootNotes(), st.Notes...)
	st.Undo = "none while the box lives: the old root is gone from its mount namespace; `rm` ends the box and with it the namespace"
	return st, nil
}

// PlanChroot is the record Chroot(newRoot) will write.
func PlanChroot(newRoot string) *step.Step {
	st := &step.Step{Command: "chroot", Man: []string{"chroot(2)", "chroot(1)"}}
	st.Plan("chroot(" + step.Quote(newRoot) + ")")
	st.Plan(`chdir("/")`)
	st.Summary = "will make " + newRoot + " the box's / — for path lookups only: the host's mounts will all stay there"
	st.Shell = []string{"chroot " + shellQuote(newRoot) + " /bin/sh"}
	st.Notes = []string{
		"chroot(2) changes one thing, where path lookups start; a process with CAP_SYS_CHROOT can chroot again and walk out with ..: the breakout lesson",
		"pivot_root changes the mount namespace's root instead, and detaches the old one, so there is nothing to walk back to",
	}
	st.Undo = "none from inside: a process cannot leave its chroot except by escaping it; new processes of the box start inside"
	return st
}

// planResolve plans resolveInRoot: the host path of target inside root,
// with a mkdir (or, for a file, an mknod) planned for each missing part,
// as the box will see them through look ("": nothing to look at yet).
func planResolve(st *step.Step, root, target, look string, dir bool) (string, error) {
	if !path.IsAbs(target) {
		return "", fmt.Errorf("%s: a path inside the box must start with /", target)
	}
	target = path.Clean(target)
	host := filepath.Join(root, target)
	if target == "/" || look == "" {
		return host, nil
	}
	elems := strings.Split(target[1:], "/")
	for i := range elems {
		rel := strings.Join(elems[:i+1], "/")
		if _, err := os.Lstat(filepath.Join(look, rel)); err == nil {
			continue
		}
		p := filepath.Join(root, rel)
		if i == len(elems)-1 && !dir {
			st.Plan(fmt.Sprintf("mknod(%s, S_IFREG|0644)", step.Quote(p)))
		} else {
			st.Plan(fmt.Sprintf("mkdir(%s, 0755)", step.Quote(p)))
		}
	}
	return host, nil
}

// umask reads the session's umask, which the box inherits, from
// /proc/self/status (reading it with umask(2) would change it).
func umask() os.FileMode {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0o022
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return os.FileMode(m)
			}
		}
	}
	return 0o022
}
