package primitives

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"stepbox/primitives/onefs"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// BoxFS is what the filesystem steps have made of a box.
type BoxFS struct {
	Layers  []rootfs.Layer // bottom to top
	Upper   string         // host path of the writable layer
	Work    string         // overlayfs's work dir
	Merged  string         // where the overlay is mounted (in the box's mount namespace)
	Pivoted bool
	// ProcAtPivot: pivot_root mounted the box's /proc (its PID namespace
	// came first), which a user namespace cannot do afterwards.
	ProcAtPivot bool
	Chrooted    bool
	Volumes     []Volume // `mount bind`, in order
	Masked      bool     // `mount mask` ran
	// MaskMounts are the mounts `mount mask` made, by unique mount ID
	// (mountID): a mask the box made itself is not stepbox's.
	MaskMounts []uint64
	// Made are the mounts stepbox's steps made in the box, as its
	// mountinfo shows them (box_hostpath.go): a host path into the box
	// crosses no other mount, which the box may have made to show a host
	// directory.
	Made []madeMount
	// Older are the box's processes that ran when pivot_root or chroot
	// changed its root (olderStamps): what such a process keeps of the
	// host cannot all be seen from outside (ut34 F1).
	Older []procStamp
}

// Volume is a host directory or file bound into the box.
type Volume struct {
	Source, Target string // the host's path; the path inside the box
	ReadOnly       bool
}

// FS returns the box's filesystem state.
func (b *Box) FS() BoxFS {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fs
}

// root is where a mount target is resolved: the merged dir before the box
// changes its root, and "/" after.
func (f BoxFS) root() string {
	if f.Pivoted || f.Chrooted {
		return "/"
	}
	return f.Merged
}

func (b *Box) needMountNamespace(cmd string) error {
	if !b.Has("mnt") {
		return fmt.Errorf("%s: box %s shares the host's mount namespace, so this would mount on the host; run `unshare mnt` first", cmd, b.Name)
	}
	return nil
}

type overlayArgs struct {
	Layers              []rootfs.Layer `json:"layers"`
	Upper, Work, Merged string
}

var errNoLayers = errors.New("mount overlay: name at least one layer, bottom first (`layers` lists them)")

// MountOverlay stacks the layers (bottom to top) with a fresh upper and
// work dir of the box's own, mounted in the box's mount namespace.
func (b *Box) MountOverlay(layers []rootfs.Layer) (*step.Step, error) {
	if err := b.needMountNamespace("mount overlay"); err != nil {
		return nil, err
	}
	if f := b.FS(); f.Merged != "" {
		return nil, fmt.Errorf("mount overlay: box %s has an overlay already (%s): `rm` it and start again to stack others", b.Name, step.Count(len(f.Layers), "layer"))
	}
	if len(layers) == 0 {
		return nil, errNoLayers
	}
	dir := filepath.Join(b.Dir, "overlay")
	// On stepbox's tmpfs (box_upper.go) the box fills only its own.
	if b.upperSize == 0 {
		if err := roomForUpper(b.Dir, b.session.Dirs.root()); err != nil {
			return nil, err
		}
	}
	// With a tmpfs of its own (box_upper.go), the dir and its mount are
	// in the ledger already.
	if b.upperSize == 0 {
		if err := b.ledger.Add(Resource{Kind: ResDir, Path: dir, Note: "upper, work and merged dirs"}); err != nil {
			return nil, err
		}
	}
	// A box whose user namespace came first mounts it as its mapped root.
	var prepared string
	if os.Geteuid() == 0 && b.Has("user") {
		var err error
		if prepared, err = b.prepareOverlayFor(b.CommandPID(), layers, dir); err != nil {
			onefs.RemoveAll(dir) // what it made: a next `mount overlay` starts afresh
			return nil, err
		}
	}
	a := overlayArgs{Layers: layers}
	a.Upper, a.Work, a.Merged = b.overlayDirs()
	// The box makes the dirs (each mkdir recorded), but for a mapped
	// root, which gets them from the session (prepareOverlayFor). The
	// upper dir takes the top layer's mode, which the overlay's root shows
	// (0755 lets the box's users in); the overlay dir above it (0700, or
	// 0710 for a mapped root's group) keeps the host's users out. The
	// overlay's mount is recorded as stepbox's (box_hostpath.go).
	var st *step.Step
	err := b.recordMounts(realMerged(a.Merged), func() (err error) {
		st, err = b.withKernel(func(x *executor) (*step.Step, error) {
			return rootfs.MountOverlay(x, a.Layers, a.Upper, a.Work, a.Merged)
		})
		return err
	})
	if err != nil {
		onefs.RemoveAll(dir) // the step's error is the one that counts
		return st, err
	}
	b.mu.Lock()
	b.fs = BoxFS{Layers: layers, Upper: a.Upper, Work: a.Work, Merged: a.Merged, Made: b.fs.Made}
	b.mu.Unlock()
	if prepared != "" {
		st.Notes = append(st.Notes, prepared)
	}
	return st, nil
}

// MountKinds are what `mount` can mount besides an overlay.
var MountKinds = []string{"proc", "sys", "cgroup", "dev", "tmpfs", "bind"}

// Mount mounts proc, sys, dev, a tmpfs or a bind of a host directory into
// the box's root (the overlay before pivot_root, "/" after).
func (b *Box) Mount(kind, source, target string, readOnly bool) (*step.Step, error) {
	cmd := "mount " + kind
	if err := b.needMountNamespace(cmd); err != nil {
		return nil, err
	}
	f := b.FS()
	if f.Merged == "" {
		return nil, fmt.Errorf("%s: box %s has no root filesystem yet: `mount overlay base` first", cmd, b.Name)
	}
	switch kind {
	case "proc", "sys", "cgroup", "dev", "tmpfs":
	case "bind":
		if f.Pivoted || f.Chrooted {
			return nil, fmt.Errorf("mount bind: the box's root has changed, so the host's %s is out of its reach; bind volumes before pivot_root or chroot, as container runtimes do", source)
		}
		fi, err := os.Stat(source)
		if err != nil {
			return nil, fmt.Errorf("mount bind: source %s: %w", source, err)
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("mount bind: source %s is neither a directory nor a file", source)
		}
	default:
		return nil, errUnknownMount(kind)
	}
	root := f.root()
	var st *step.Step
	point := path.Join(realMerged(root), "/"+target)
	if root == "/" {
		point = path.Clean("/" + target)
	}
	err := b.recordMounts(point, func() (err error) {
		st, err = b.withKernel(func(x *executor) (*step.Step, error) {
			var kept *rootfs.Kept
			if b.keptIn == x {
				kept = b.kept
			}
			return mountKind(x, kind, source, root, target, readOnly, kept)
		})
		return err
	})
	if err == nil && kind == "bind" {
		b.mu.Lock()
		b.fs.Volumes = append(b.fs.Volumes, Volume{Source: source, Target: path.Clean("/" + target), ReadOnly: readOnly})
		b.mu.Unlock()
	}
	return st, err
}

// PivotRoot makes the overlay the box's "/" and detaches the host's.
func (b *Box) PivotRoot() (*step.Step, error) {
	f := b.FS()
	switch {
	case !b.Has("mnt"):
		return nil, fmt.Errorf("pivot_root: box %s has no mount namespace of its own: pivot_root there would swap the root of every process on the host; run `unshare mnt` first", b.Name)
	case f.Merged == "":
		return nil, fmt.Errorf("pivot_root: box %s has no root filesystem to switch to: `mount overlay base` first", b.Name)
	case f.Pivoted:
		return nil, errors.New("pivot_root: the box's root is the overlay already")
	case f.Chrooted:
		return nil, errors.New("pivot_root: the box used chroot already; `rm` it and build a new one to compare")
	}
	withProc := b.Has("pid")
	st, err := b.withKernel(func(x *executor) (*step.Step, error) {
		return b.keepHostDevices(x, func() (*step.Step, error) { return rootfs.PivotRoot(x, f.Merged, withProc) })
	})
	// A failure after pivot_root itself (mounting /proc) leaves the root
	// changed all the same: say so in the box's state.
	if err == nil || st.Succeeded("pivot_root") > 0 {
		b.mu.Lock()
		b.fs.Pivoted = true
		b.fs.ProcAtPivot = withProc && err == nil
		b.mu.Unlock()
		proc := "" // pivot_root's own /proc, mounted after the bind
		if withProc && err == nil {
			proc = "/proc"
		}
		b.rebaseMounts(realMerged(f.Merged), true, proc)
		older := b.olderStamps()
		b.mu.Lock()
		b.fs.Older = older
		b.mu.Unlock()
	}
	return st, err
}

// Chroot changes the box's root directory to the overlay: the weaker
// alternative, which a process with CAP_SYS_CHROOT can leave.
func (b *Box) Chroot() (*step.Step, error) {
	f := b.FS()
	switch {
	case f.Merged == "":
		return nil, errors.New("chroot: box " + b.Name + " has no root filesystem: `mount overlay base` first")
	case f.Pivoted || f.Chrooted:
		return nil, errors.New("chroot: the box's root has changed already")
	}
	st, err := b.withKernel(func(x *executor) (*step.Step, error) {
		return b.keepHostDevices(x, func() (*step.Step, error) { return rootfs.Chroot(x, f.Merged) })
	})
	if err == nil {
		b.mu.Lock()
		b.fs.Chrooted = true
		b.mu.Unlock()
		b.rebaseMounts(realMerged(f.Merged), false, "")
		older := b.olderStamps()
		b.mu.Lock()
		b.fs.Older = older
		b.mu.Unlock()
	}
	return st, err
}

// keepHostDevices runs change, a step that moves the box's root, keeping
// what keepingMounts takes for the box's later `mount dev` and `mount
// sys` when the root did move. b.mu is held.
func (b *Box) keepHostDevices(x *executor, change func() (*step.Step, error)) (*step.Step, error) {
	st, kept, err := keepingMounts(x, b.unshared["user"], b.unshared["net"], change)
	if err != nil && st.Succeeded("pivot_root") == 0 && st.Succeeded("chroot") == 0 {
		kept.Close(x)
		return st, err
	}
	b.kept, b.keptIn = kept, x
	return st, err
}

// keepingMounts runs change, a step that moves the box's root, and, in a
// box with a user namespace of its own (user), first keeps what its
// `mount dev` and `mount sys` need and cannot reach after change
// (rootfs.Kept): copies of the host's device nodes, and, with a network
// namespace of its own (net), a sysfs. Their calls come first in the step.
func keepingMounts(k rootfs.Kernel, user, net bool, change func() (*step.Step, error)) (*step.Step, *rootfs.Kept, error) {
	if !user {
		st, err := change()
		return st, nil, err
	}
	calls := &step.Step{}
	kept := rootfs.Keep(k, calls, net)
	st, err := change()
	if st != nil {
		st.Calls = append(calls.Calls, st.Calls...)
		st.Notes = append(st.Notes, "in a user namespace mknod(2) of a device is refused, so `mount dev` binds the host's nodes, and a new sysfs is refused once the host's is out of sight: the copies and the sysfs are taken first, since after this step the host's /dev and /sys are out of reach")
	}
	return st, kept, err
}

// Breakout tries the classic chroot escape from inside the box and
// reports how far it got: out to the host after chroot, nowhere after
// pivot_root. The box's own root is put back afterwards.
func (b *Box) Breakout() (rootfs.Escape, *step.Step, error) {
	var esc rootfs.Escape
	f := b.FS()
	if !f.Pivoted && !f.Chrooted {
		return esc, nil, errors.New("breakout: the box's root is still the host's; `chroot` or `pivot_root` first, then try to break out")
	}
	st, err := b.withKernel(func(x *executor) (st *step.Step, err error) {
		st, esc, err = breakout(x)
		return st, err
	})
	return esc, st, err
}

// breakout runs the chroot escape in the box and puts the box's own root
// and working directory back afterwards, through descriptors the executor
// keeps open meanwhile.
func breakout(x *executor) (*step.Step, rootfs.Escape, error) {
	root, err := x.Open("/", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, rootfs.Escape{}, fmt.Errorf("breakout: open /: %w", err)
	}
	defer x.Close(root)
	cwd, err := x.Open(".", unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, rootfs.Escape{}, fmt.Errorf("breakout: open .: %w", err)
	}
	defer x.Close(cwd)
	st, esc, err := rootfs.ChrootEscape(x)
	restore := st.Do(fmt.Sprintf("fchdir(%d)", root), func() error { return x.Fchdir(root) })
	if restore == nil {
		restore = st.Do(`chroot(".")   # back into the box's root`, func() error { return x.Chroot(".") })
	}
	if restore == nil {
		restore = st.Do(fmt.Sprintf("fchdir(%d)", cwd), func() error { return x.Fchdir(cwd) })
	}
	if restore != nil {
		// The box could not go back into its root: it must not run
		// anything more.
		x.c.close()
		return st, esc, x.b.died(fmt.Errorf("breakout: cannot restore the box's root: %w", restore))
	}
	return st, esc, err
}

// Stack reads the box's layer stack live from the layer and upper dirs.
func (b *Box) Stack(withFiles bool) (rootfs.StackSnapshot, error) {
	f := b.FS()
	if f.Merged == "" {
		return rootfs.StackSnapshot{}, fmt.Errorf("stack: box %s has no overlay yet: `mount overlay base fileA` makes one", b.Name)
	}
	// The upper dir is read from the host: a link put in its place would
	// show a host dir's files as the box's changes (ut31 F1).
	if err := b.UpperTop(); err != nil {
		return rootfs.StackSnapshot{}, fmt.Errorf("stack: box %s's upper dir is not as stepbox made it, so its changes are not shown: %w", b.Name, err)
	}
	snap, err := rootfs.ReadStack(f.Layers, f.Upper, b.HostRoot(), withFiles)
	snap.Entered = f.Pivoted || f.Chrooted
	return snap, err
}

// Mounts reads the mount table of the box's command process, and the
// session's (the host's) for comparison: each keeps its first
// rootfs.MountsKept mounts and counts the rest. The box's table is read
// until ctx ends: cut short, box holds what was read, with Cut set, and
// err is the *rootfs.MountsCutError.
func (b *Box) Mounts(ctx context.Context) (box, host rootfs.MountTable, err error) {
	if box, err = rootfs.MountsOf(ctx, "/proc", b.CommandPID()); err != nil {
		err = fmt.Errorf("box %s: %w", b.Name, err)
		return
	}
	host, err = rootfs.Mounts(os.Getpid())
	return
}

// MountDiff compares the box's whole mount table, read as a stream, with
// the session's (the host's), until ctx ends (rootfs.DiffMountsOf).
func (b *Box) MountDiff(ctx context.Context) (rootfs.MountDiff, error) {
	host, err := rootfs.Mounts(os.Getpid())
	if err != nil {
		return rootfs.MountDiff{}, err
	}
	return b.MountDiffFrom(ctx, host)
}

// MountDiffFrom compares the box's whole mount table, read as a stream,
// with old (the box's own before a step), until ctx ends.
func (b *Box) MountDiffFrom(ctx context.Context, old rootfs.MountTable) (rootfs.MountDiff, error) {
	d, err := rootfs.DiffMountsOf(ctx, old, "/proc", b.CommandPID())
	if err != nil {
		err = fmt.Errorf("box %s: %w", b.Name, err)
	}
	return d, err
}

// MountMask masks Docker's paths of /proc and /sys in the box and makes
// its read-only paths read-only (rootfs.MountMask).
func (b *Box) MountMask() (*step.Step, error) {
	if err := b.needMountNamespace("mount mask"); err != nil {
		return nil, err
	}
	f := b.FS()
	if f.Merged == "" {
		return nil, fmt.Errorf("mount mask: box %s has no root filesystem yet: `mount overlay base` first", b.Name)
	}
	root := f.root()
	var st *step.Step
	err := b.recordMounts(realMerged(root), func() (err error) {
		st, err = b.withKernel(func(x *executor) (*step.Step, error) { return rootfs.MountMask(x, root) })
		return err
	})
	if err == nil {
		b.mu.Lock()
		b.fs.Masked = true
		b.mu.Unlock()
		b.recordMasks(root)
	}
	return st, err
}

// PlanMountMask is the record `mount mask` will write.
func (b *Box) PlanMountMask() (*step.Step, error) {
	root := b.fsRoot()
	return b.planFS(func(k rootfs.Kernel) (*step.Step, error) { return rootfs.MountMask(k, root) })
}
