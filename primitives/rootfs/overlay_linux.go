package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// MountOverlay mounts an overlay of layers (bottom→top, as listed) at
// merged, with upper as the box's writable layer and work as overlayfs's
// scratch dir; both must be missing or empty, and merged free. It checks
// everything first: on a bad request nothing is created or mounted.
//
// A stack whose option string fits in a page is mounted with one
// mount(2), the call `mount -t overlay` makes. A longer one (a 100-layer
// stack) would be cut at the page mount(2) copies: on Linux ≥ 6.8 its
// layers are added one by one with fsopen/fsconfig("lowerdir+"), which
// keeps host paths in mountinfo; before, they are given relative to
// their common directory, which the box process chdirs into for the
// mount(2) and leaves after (overlayOptions says which).
func MountOverlay(k Kernel, layers []Layer, upper, work, merged string) (*step.Step, error) {
	var names []string
	for _, l := range layers {
		names = append(names, l.Name)
	}
	st := &step.Step{Command: "mount overlay " + strings.Join(names, " "), Man: []string{"mount(2)", "overlayfs"}}
	fail := func(err error) (*step.Step, error) { return st, fmt.Errorf("mount overlay: %w", err) }
	if err := checkMountNamespace(k); err != nil {
		return fail(err)
	}
	if err := checkOverlayDirs(layers, upper, work, merged); err != nil {
		return fail(err)
	}
	for _, d := range []string{upper, work} {
		if err := checkFresh(d); err != nil {
			return fail(err)
		}
	}
	mounts, err := threadMounts(k)
	if err != nil {
		return fail(err)
	}
	real, err := realPath(merged)
	if err != nil {
		return fail(err)
	}
	if m := mountAt(mounts, real); m != nil {
		return fail(fmt.Errorf("%s is already a mount point (%s); umount it first or use another box", merged, m.FSType))
	}
	lowers := make([]string, len(layers)) // top first, as overlayfs orders them
	for i, l := range layers {
		lowers[len(layers)-1-i] = l.Dir
	}
	userns := inUserNamespace(k)
	xino := otherFilesystem(filepath.Dir(upper), layers)
	req, err := overlayOptions(lowers, upper, work, userns, xino, os.Getpagesize(), kernelRelease())
	if err != nil {
		return fail(err)
	}
	opts := req.opts
	top, err := os.Stat(layers[len(layers)-1].Dir)
	if err != nil {
		return fail(err)
	}
	var created []string
	// The overlay's root directory takes its mode from the upper dir, so
	// the upper dir gets the top layer's ("/" of the image, usually 0755).
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{upper, top.Mode().Perm()}, {work, 0o700}, {merged, 0o755}} {
		c, err := mkdirs(k, st, d.path, d.mode)
		if err != nil {
			removeAll(k, created)
			return fail(err)
		}
		created = append(created, c...)
	}

	switch req.how {
	case overlayMount:
		err = mountCall(k, st, "overlay", merged, "overlay", 0, opts)
	case overlayFsconfig:
		st.Notes = append(st.Notes, fmt.Sprintf(
			"the options take %d bytes, more than the one page (%d) mount(2) copies: the layers were added one by one with fsconfig(lowerdir+)",
			len(opts), os.Getpagesize()))
		err = fsmountOverlay(k, st, req.lowers, upper, work, userns, xino, merged)
	case overlayRelative:
		st.Notes = append(st.Notes, fmt.Sprintf(
			"with host paths the options would take more than the one page (%d) mount(2) copies, and this kernel (before %s) cannot add layers one by one with fsconfig(lowerdir+): "+
				"the layers were given relative to %s, the box's working directory for the mount(2) only, as Docker's overlay2 does (mountinfo shows them relative)",
			os.Getpagesize(), lowerdirPlusRelease, req.dir))
		err = mountFrom(k, st, req.dir, merged, opts)
	}
	if err != nil {
		removeAll(k, created)
		return fail(fmt.Errorf("at %s: %w", merged, err))
	}

	describeOverlay(st, layers, names, req, upper, work, merged)
	if xino {
		st.Notes = append(st.Notes, "the upper dir is on another filesystem than the layers (stepbox's tmpfs for it): xino=on gives every file the overlay's own device number, as one filesystem has, so tools that stop at a device change (cp -x, tar --one-file-system) see one tree")
	}
	return st, nil
}

// otherFilesystem reports whether dir, where the upper dir goes, is on
// another filesystem than one of the layers. overlayfs then gives each
// non-directory its own layer's device number (st_dev) unless xino is on
// (Documentation/filesystems/overlayfs.rst, "Inode properties").
func otherFilesystem(dir string, layers []Layer) bool {
	var up unix.Stat_t
	if unix.Stat(dir, &up) != nil {
		return false
	}
	for _, l := range layers {
		var st unix.Stat_t
		if unix.Stat(l.Dir, &st) == nil && st.Dev != up.Dev {
			return true
		}
	}
	return false
}

// mountShell is the mount(8) line of req: from req.dir when the layers
// are relative to it.
func mountShell(req overlayRequest, merged string) string {
	line := "mount -t overlay overlay -o " + shellQuote(req.opts) + " " + shellQuote(merged)
	if req.how == overlayRelative {
		return "(cd " + shellQuote(req.dir) + " && " + line + ")"
	}
	return line
}

// mountFrom runs the overlay's mount(2) with dir as the working directory,
// so the relative lowerdirs in opts resolve there, then returns to the
// directory it left. merged must be absolute.
func mountFrom(k Kernel, st *step.Step, dir, merged, opts string) error {
	fd, err := k.Open(".", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err := recordFD(st, `openat(AT_FDCWD, ".", O_PATH|O_DIRECTORY|O_CLOEXEC)`, fd, err); err != nil {
		return err
	}
	defer k.Close(fd)
	if err := st.Do("chdir("+step.Quote(dir)+")", func() error { return k.Chdir(dir) }); err != nil {
		return err
	}
	err = mountCall(k, st, "overlay", merged, "overlay", 0, opts)
	back := st.Do(fmt.Sprintf("fchdir(%d)", fd), func() error { return k.Fchdir(fd) })
	return errors.Join(err, back)
}

// checkFresh refuses an upper or work dir that holds anything: an upper
// dir full of another box's changes would silently become this box's.
func checkFresh(dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case len(entries) > 0:
		return fmt.Errorf("%s is not empty: each box needs a fresh upper and work dir", dir)
	}
	return nil
}

// fsmountOverlay mounts the overlay with the new mount API: an fs context
// configured one option per call, turned into a detached mount and moved
// onto merged. On failure the kernel's own message, read from the context
// (fsopen(2)), is added to the error.
func fsmountOverlay(k Kernel, st *step.Step, lowers []string, upper, work string, userxattr, xino bool, merged string) error {
	fd, err := k.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err := recordFD(st, `fsopen("overlay", FSOPEN_CLOEXEC)`, fd, err); err != nil {
		return err
	}
	defer k.Close(fd)
	set := func(key, value string) error {
		call := fmt.Sprintf("fsconfig(%d, FSCONFIG_SET_STRING, %s, %s, 0)", fd, step.Quote(key), step.Quote(value))
		return st.Do(call, func() error { return k.FsconfigSetString(fd, key, value) })
	}
	err = set("source", "overlay")
	for _, l := range lowers {
		if err == nil {
			err = set("lowerdir+", l)
		}
	}
	if err == nil {
		err = set("upperdir", upper)
	}
	if err == nil {
		err = set("workdir", work)
	}
	if err == nil && xino {
		err = set("xino", "on")
	}
	if err == nil && userxattr {
		err = st.Do(fmt.Sprintf(`fsconfig(%d, FSCONFIG_SET_FLAG, "userxattr", NULL, 0)`, fd), func() error {
			return k.FsconfigSetFlag(fd, "userxattr")
		})
	}
	if err == nil {
		err = st.Do(fmt.Sprintf("fsconfig(%d, FSCONFIG_CMD_CREATE, NULL, NULL, 0)", fd), func() error { return k.FsconfigCreate(fd) })
	}
	if err != nil {
		if msg := fsLog(k, fd); msg != "" {
			return fmt.Errorf("%w (kernel: %s)", err, msg)
		}
		return err
	}
	mfd, err := k.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err := recordFD(st, fmt.Sprintf("fsmount(%d, FSMOUNT_CLOEXEC, 0)", fd), mfd, err); err != nil {
		return err
	}
	defer k.Close(mfd)
	return st.Do(fmt.Sprintf(`move_mount(%d, "", AT_FDCWD, %s, MOVE_MOUNT_F_EMPTY_PATH)`, mfd, step.Quote(merged)), func() error {
		return k.MoveMount(mfd, "", unix.AT_FDCWD, merged, unix.MOVE_MOUNT_F_EMPTY_PATH)
	})
}

// fsLog drains the messages the kernel left in an fs context ("e overlayfs: …").
func fsLog(k Kernel, fd int) string {
	var msgs []string
	buf := make([]byte, 4096)
	for {
		n, err := k.Read(fd, buf)
		if err != nil || n <= 0 {
			return strings.Join(msgs, "; ")
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
}

// describeOverlay writes what MountOverlay and its plan both say of a
// stack: summary, shell lines, the top-first order, undo.
func describeOverlay(st *step.Step, layers []Layer, names []string, req overlayRequest, upper, work, merged string) {
	stack := fmt.Sprintf("an overlay of %s at %s: %s at the bottom, %s on top", step.Count(len(layers), "layer"), merged, layers[0].Name, layers[len(layers)-1].Name)
	st.Tell("mounted "+stack+"; the box's writes go to "+upper, "will mount "+stack+"; the box's writes will go to "+upper)
	st.Shell = append(st.Shell,
		"mkdir -p "+shellQuote(upper)+" "+shellQuote(work)+" "+shellQuote(merged),
		mountShell(req, merged))
	order := make([]string, len(names))
	for i, n := range names {
		order[len(names)-1-i] = n
	}
	st.Notes = append(st.Notes,
		"lowerdir= lists the layers top first ("+strings.Join(order, ":")+"): where two layers hold the same path, the one listed first wins",
		"a file changed in the box is copied up into the upper dir; a deleted one leaves a whiteout there (a 0/0 character device); the layers never change")
	st.Undo = fmt.Sprintf("umount %s; rm -rf %s %s", shellQuote(merged), shellQuote(upper), shellQuote(work))
}
