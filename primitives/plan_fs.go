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

// PlanMountOverlay is the record `mount overlay LAYER…` will write.
func (b *Box) PlanMountOverlay(layers []rootfs.Layer) (*step.Step, error) {
	upper, work, merged := b.overlayDirs()
	return rootfs.PlanMountOverlay(layers, upper, work, merged, b.User)
}

// planRoot is where the box's filesystem steps resolve paths (the merged
// dir before the box changes its root, "/" after), and where the session
// can look at it; look is "" before there is an overlay to look at.
func (b *Box) planRoot() (root, look string, note string) {
	f := b.FS()
	if f.Merged == "" {
		_, _, merged := b.overlayDirs()
		return merged, "", "the box has no overlay yet: `mount overlay LAYER…` makes the root this step works in"
	}
	return f.root(), b.HostRoot(), ""
}

// PlanMount is the record `mount proc|sys|dev|tmpfs|bind …` will write.
func (b *Box) PlanMount(kind, source, target string, readOnly bool) (*step.Step, error) {
	root, look, note := b.planRoot()
	var st *step.Step
	var err error
	switch kind {
	case "proc":
		st, err = rootfs.PlanMountProc(root, target, look)
	case "sys":
		st, err = rootfs.PlanMountSys(root, target, look)
	case "dev":
		st, err = rootfs.PlanMountDev(root, target, look, b.User)
	case "tmpfs":
		st, err = rootfs.PlanMountTmpfs(root, target, look)
	case "bind":
		st, err = rootfs.PlanMountBind(source, root, target, readOnly, look)
	default:
		return nil, errUnknownMount(kind)
	}
	if err != nil {
		return nil, err
	}
	addNote(st, note)
	return st, nil
}

// PlanPivotRoot is the record `pivot_root` will write.
func (b *Box) PlanPivotRoot() (*step.Step, error) {
	_, look, note := b.planRoot()
	_, _, merged := b.overlayDirs()
	st, err := rootfs.PlanPivotRoot(merged, b.Has("pid"), look)
	if err != nil {
		return nil, err
	}
	addNote(st, note)
	return st, nil
}

// PlanChroot is the record `chroot` will write.
func (b *Box) PlanChroot() (*step.Step, error) {
	_, _, note := b.planRoot()
	_, _, merged := b.overlayDirs()
	st := rootfs.PlanChroot(merged)
	addNote(st, note)
	return st, nil
}

func addNote(st *step.Step, note string) {
	if note != "" {
		st.Notes = append(st.Notes, note)
	}
}

func errUnknownMount(kind string) error {
	return fmt.Errorf("mount %s: unknown kind: use overlay, proc, sys, dev, tmpfs or bind", kind)
}
