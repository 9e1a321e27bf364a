package rootfs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"stepbox/primitives/inroot"
	"stepbox/primitives/step"
)

// PivotRule names the rule a failed pivot_root broke, so a caller can
// explain each cause its own way.
type PivotRule int

const (
	PivotNoMountNamespace  PivotRule = iota + 1 // still in the host's mount namespace
	PivotNoOverlay                              // nothing, or not an overlay, mounted at the new root
	PivotSharedMount                            // the new root's parent mount, or the current root, is shared
	PivotNotMountPoint                          // the new root is not a mount point
	PivotRootNotMountPoint                      // the caller's root is not a mount point (chroot into a plain dir)
	PivotOther                                  // anything else: see the errno
)

// PivotRootError is a refused or failed pivot_root: which rule, on what.
type PivotRootError struct {
	Rule    PivotRule
	NewRoot string
	Detail  string // e.g. which mount is shared
	Err     error  // ErrHostMountNamespace, or the failed syscall (*step.SyscallError)
}

func (e *PivotRootError) Error() string {
	msg := "pivot_root into " + e.NewRoot + ": "
	switch e.Rule {
	case PivotNoMountNamespace:
		return msg + "the box has no mount namespace of its own yet, and pivot_root there would swap the host's root for every process on the host: run `unshare mnt` first"
	case PivotNoOverlay:
		return msg + e.Detail + ": the box has no root filesystem to switch to; run `mount overlay LAYER…` first"
	case PivotSharedMount:
		return fmt.Sprintf("%s%v: pivot_root(2) refuses (EINVAL) while the new root's parent mount or the current root is shared — %s — since the move would propagate to its peers; make the tree private first: `mount --make-rprivate /`", msg, e.Err, e.Detail)
	case PivotNotMountPoint:
		return fmt.Sprintf("%s%v: %s, and pivot_root(2) needs new_root to be a mount point of its own; bind it onto itself first: `mount --bind %s %s`", msg, e.Err, e.Detail, e.NewRoot, e.NewRoot)
	case PivotRootNotMountPoint:
		return fmt.Sprintf("%s%v: pivot_root(2) needs the caller's root to be a mount point, and after a chroot into a plain directory it is not; pivot_root from a box that was not chrooted", msg, e.Err)
	}
	if step.Errno(e.Err) == unix.EPERM {
		return fmt.Sprintf("%s%v: pivot_root needs CAP_SYS_ADMIN in the user namespace that owns the box's mount namespace", msg, e.Err)
	}
	return fmt.Sprintf("%s%v", msg, e.Err)
}

func (e *PivotRootError) Unwrap() error { return e.Err }

// PivotRoot makes the overlay mounted at newRoot the box's "/" and
// detaches the host's root from the box's mount namespace, each call
// recorded: make every mount private, bind newRoot onto itself, chdir
// into it, pivot_root(".", "."), detach the old root now stacked on ".",
// chdir("/"), and, withProc, mount the box's /proc — do that only from a
// process inside the box's PID namespace, whose PIDs it shows.
func PivotRoot(k Kernel, newRoot string, withProc bool) (*step.Step, error) {
	st := &step.Step{Command: "pivot_root", Man: []string{"pivot_root(2)", "mount(2)", "mount_namespaces(7)"}}
	fail := func(rule PivotRule, detail string, err error) (*step.Step, error) {
		return st, &PivotRootError{Rule: rule, NewRoot: newRoot, Detail: detail, Err: err}
	}
	if err := checkNewRoot(k, newRoot); err != nil {
		return st, err
	}
	if withProc && !isPlanning(k) {
		if err := checkProcDir(k, newRoot); err != nil {
			return st, err
		}
	}
	cwd, err := k.Open(".", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return fail(PivotOther, "", fmt.Errorf("open the current directory: %w", err))
	}
	defer k.Close(cwd)

	// Private, not just slave: pivot_root refuses shared mounts, and
	// nothing the box does to its mounts from here on should leave it.
	if err := mountCall(k, st, "", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fail(PivotOther, "", err)
	}
	// The bind makes newRoot a mount point whatever it was, and MS_REC
	// carries along what is already mounted under it (proc, dev, volumes).
	if err := mountCall(k, st, newRoot, newRoot, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fail(PivotOther, "", err)
	}
	undoBind := func(err error) error {
		if ferr := k.Fchdir(cwd); ferr != nil {
			err = errors.Join(err, fmt.Errorf("fchdir back: %w", ferr))
		}
		if uerr := umountCall(k, st, newRoot, unix.MNT_DETACH); uerr != nil {
			err = errors.Join(err, uerr)
		}
		return err
	}
	if err := st.Do("chdir("+step.Quote(newRoot)+")", func() error { return k.Chdir(newRoot) }); err != nil {
		return fail(PivotOther, "", undoBind(err))
	}
	// pivot_root(".", ".") puts the old root on top of the new one, at
	// the cwd: no put_old directory is needed in the image (pivot_root(2),
	// NOTES; runc and LXC do the same).
	if err := st.Do(`pivot_root(".", ".")`, func() error { return k.PivotRoot(".", ".") }); err != nil {
		rule, detail := pivotRule(k, err, newRoot)
		return fail(rule, detail, undoBind(err))
	}
	// /proc goes on while the old root is still attached: in a user
	// namespace the kernel mounts a new proc only where one is already
	// fully visible in the mount namespace (mount_too_revealing(), fs/
	// namespace.c), and the host's /proc, in the old root, is that one.
	// "/proc" resolves in the new root: the walk starts at this process's
	// root, the new one, and the old root stacked on it is not entered.
	var procErr error
	if withProc {
		ps, err := MountProc(k, "/", "/proc")
		st.Merge(ps)
		procErr = err
	}
	if err := umountCall(k, st, ".", unix.MNT_DETACH); err != nil {
		return fail(PivotOther, "", err)
	}
	if err := st.Do(`chdir("/")`, func() error { return k.Chdir("/") }); err != nil {
		return fail(PivotOther, "", err)
	}
	st.Shell = pivotRootShell(newRoot, withProc)
	st.Tell("made the overlay at "+newRoot+" the box's /, and detached the host's root from the box",
		"will make the overlay at "+newRoot+" the box's /, and detach the host's root from the box")
	st.Notes = append(pivotRootNotes(), st.Notes...)
	if procErr != nil {
		// The root has changed all the same: the caller records the pivot,
		// and the learner reads here that it happened.
		return st, fmt.Errorf("the pivot is done — the overlay at %s is the box's / and the host's root is detached — but the box has no /proc: %w; "+
			"`mount proc` tries again, or `rm` the box and build it anew", newRoot, procErr)
	}
	st.Undo = "none while the box lives: the old root is gone from its mount namespace; `rm` ends the box and with it the namespace"
	return st, nil
}

// checkNewRoot refuses a pivot_root the kernel would refuse, or that would
// swap the host's root: no mount namespace of the box's own, no overlay
// at newRoot. A plan skips it: the steps before may not have run yet.
func checkNewRoot(k Kernel, newRoot string) error {
	if isPlanning(k) {
		return nil
	}
	fail := func(rule PivotRule, detail string, err error) error {
		return &PivotRootError{Rule: rule, NewRoot: newRoot, Detail: detail, Err: err}
	}
	if err := checkMountNamespace(k); err != nil {
		return fail(PivotNoMountNamespace, "", err)
	}
	mounts, err := threadMounts(k)
	if err != nil {
		return fail(PivotOther, "", err)
	}
	real, err := realPath(newRoot)
	if err != nil {
		return fail(PivotOther, "", err)
	}
	switch m := mountAt(mounts, real); {
	case m == nil:
		return fail(PivotNoOverlay, "nothing is mounted at "+newRoot, errors.New("no overlay"))
	case m.FSType != "overlay":
		return fail(PivotNoOverlay, fmt.Sprintf("%s is a %s mount, not an overlay", newRoot, m.FSType), errors.New("no overlay"))
	}
	return nil
}

// checkProcDir refuses, before anything changes, a new root whose /proc
// is not a directory (an image's `proc -> /somewhere`, or a file): the
// box's /proc is mounted there after pivot_root(2), when the old root is
// gone and the failure could no longer be undone. It is looked at inside
// the new root (RESOLVE_IN_ROOT): an image's link is never followed on
// the host. A missing /proc is made by the mount.
func checkProcDir(k Kernel, newRoot string) error {
	st, err := inroot.Lstat(k.Path(newRoot), "/proc")
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return &PivotRootError{Rule: PivotOther, NewRoot: newRoot, Err: fmt.Errorf("look at its /proc before pivoting: %w", err)}
	case st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return nil
	}
	what := "not a directory"
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		what = "a symlink"
		if t, err := inroot.Readlink(k.Path(newRoot), "/proc"); err == nil {
			what += " (-> " + step.Quote(t) + ")"
		}
	}
	return &PivotRootError{Rule: PivotOther, NewRoot: newRoot, Err: fmt.Errorf(
		"the new root's /proc is %s, where pivot_root must mount the box's /proc once the old root is gone; nothing was changed. "+
			"Build the box from an image whose /proc is a directory (or has none): `rm` this box first", what)}
}

// pivotRule names the rule a failed pivot_root(".", ".") in newRoot broke.
func pivotRule(k Kernel, err error, newRoot string) (PivotRule, string) {
	switch step.Errno(err) {
	case unix.EBUSY:
		// new_root on the caller's root mount (fs/namespace.c: "loop, on
		// the same file system").
		return PivotNotMountPoint, newRoot + " is a directory on the current root's mount"
	case unix.EINVAL:
		return diagnosePivot(k, newRoot)
	}
	return PivotOther, ""
}

// diagnosePivot names the rule an EINVAL from pivot_root broke, reading
// the mount table as it is at the failure.
func diagnosePivot(k Kernel, newRoot string) (PivotRule, string) {
	mounts, err := threadMounts(k)
	if err != nil {
		return PivotOther, ""
	}
	root := mountAt(mounts, "/")
	if root == nil {
		return PivotRootNotMountPoint, ""
	}
	real, err := realPath(newRoot)
	if err != nil {
		return PivotOther, ""
	}
	m := mountAt(mounts, real)
	if m == nil {
		return PivotNotMountPoint, newRoot + " is not a mount point"
	}
	for _, p := range mounts {
		if p.MountID == m.ParentID {
			if id, ok := p.OptionalFields["shared"]; ok {
				return PivotSharedMount, fmt.Sprintf("the parent mount %s is shared:%s", p.MountPoint, id)
			}
		}
	}
	if id, ok := root.OptionalFields["shared"]; ok {
		return PivotSharedMount, "the root mount / is shared:" + id
	}
	return PivotOther, ""
}

// pivotRootNotes are the notes of PivotRoot and of its plan.
func pivotRootNotes() []string {
	return []string{
		`pivot_root(".", ".") stacks the old root on the new one; umount -l detaches it, so no old-root directory is left to remove`,
		"every process of this mount namespace whose root or cwd was the old root moves along (pivot_root(2))",
		"the host still reaches the box's files through /proc/PID/root",
		"the bind takes the mounts inside the new root along (MS_REC): a volume of `mount bind`, or a host dir the box bound there itself, still shows the host's files after the pivot",
	}
}

// pivotRootShell is PivotRoot with standard tools; PlanPivotRoot shows the same.
func pivotRootShell(newRoot string, withProc bool) []string {
	sh := []string{
		"mount --make-rprivate /",
		"mount --rbind " + shellQuote(newRoot) + " " + shellQuote(newRoot),
		"cd " + shellQuote(newRoot),
		"pivot_root . .",
	}
	if withProc {
		sh = append(sh, "mount -t proc -o nosuid,nodev,noexec proc /proc")
	}
	return append(sh, "umount -l .", "cd /")
}
