package primitives

import (
	"fmt"
	"path/filepath"

	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
)

// overlayDirs are the upper, work and merged dirs `mount overlay` gives
// the box, under its state directory.
func (b *Box) overlayDirs() (upper, work, merged string) {
	dir := filepath.Join(b.Dir, "overlay")
	return filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
}

// planFS runs a filesystem step's own code against a stand-in for the
// box's executor that performs nothing (rootfs.Planning) and reads the
// box as it is: the plan `explain` prints is the record the step writes.
func (b *Box) planFS(run func(k rootfs.Kernel) (*step.Step, error)) (*step.Step, error) {
	b.mu.Lock()
	x := b.active()
	b.mu.Unlock()
	st, err := run(rootfs.Planning(x))
	if err != nil {
		return nil, err
	}
	st.MarkNotRun()
	if b.FS().Merged == "" {
		st.Notes = append(st.Notes, "the box has no overlay yet: `mount overlay LAYER…` makes the root this step works in")
	}
	return st, nil
}

// PlanMountOverlay is the record `mount overlay LAYER…` will write.
func (b *Box) PlanMountOverlay(layers []rootfs.Layer) (*step.Step, error) {
	if len(layers) == 0 {
		return nil, errNoLayers
	}
	upper, work, merged := b.overlayDirs()
	return b.planFS(func(k rootfs.Kernel) (*step.Step, error) {
		return rootfs.MountOverlay(k, layers, upper, work, merged)
	})
}

// PlanMount is the record `mount proc|sys|dev|tmpfs|bind …` will write.
func (b *Box) PlanMount(kind, source, target string, readOnly bool) (*step.Step, error) {
	root := b.fsRoot()
	b.mu.Lock()
	kept := b.kept.Clone()
	b.mu.Unlock()
	return b.planFS(func(k rootfs.Kernel) (*step.Step, error) {
		return mountKind(k, kind, source, root, target, readOnly, kept)
	})
}

// fsRoot is where the box's filesystem steps resolve paths: the merged
// dir (the one it will have) before the box changes its root, "/" after.
func (b *Box) fsRoot() string {
	if f := b.FS(); f.Merged != "" {
		return f.root()
	}
	_, _, merged := b.overlayDirs()
	return merged
}

// PlanPivotRoot is the record `pivot_root` will write.
func (b *Box) PlanPivotRoot() (*step.Step, error) {
	_, _, merged := b.overlayDirs()
	withProc := b.Has("pid")
	return b.planFS(func(k rootfs.Kernel) (*step.Step, error) {
		st, _, err := keepingMounts(k, b.Has("user"), b.Has("net"), func() (*step.Step, error) { return rootfs.PivotRoot(k, merged, withProc) })
		return st, err
	})
}

// PlanChroot is the record `chroot` will write.
func (b *Box) PlanChroot() (*step.Step, error) {
	_, _, merged := b.overlayDirs()
	return b.planFS(func(k rootfs.Kernel) (*step.Step, error) {
		st, _, err := keepingMounts(k, b.Has("user"), b.Has("net"), func() (*step.Step, error) { return rootfs.Chroot(k, merged) })
		return st, err
	})
}

// mountKind is `mount KIND`, for the step and its plan.
func mountKind(k rootfs.Kernel, kind, source, root, target string, readOnly bool, kept *rootfs.Kept) (*step.Step, error) {
	switch kind {
	case "proc":
		return rootfs.MountProc(k, root, target)
	case "sys":
		return rootfs.MountSysKept(k, root, target, kept)
	case "cgroup":
		return rootfs.MountCgroup(k, root, target)
	case "dev":
		return rootfs.MountDevKept(k, root, target, kept)
	case "tmpfs":
		return rootfs.MountTmpfs(k, root, target)
	case "bind":
		return rootfs.MountBind(k, source, root, target, readOnly)
	}
	return nil, errUnknownMount(kind)
}

func errUnknownMount(kind string) error {
	return fmt.Errorf("mount %s: unknown kind: use overlay, proc, sys, cgroup, dev, tmpfs, bind or mask", kind)
}
