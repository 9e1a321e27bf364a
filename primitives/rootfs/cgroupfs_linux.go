package rootfs

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
)

// cgroupFlags: the box reads its cgroups and writes none, as Docker
// mounts them (and runc's default spec): a box that wrote there could
// raise its own limits or move out of its cgroup.
const cgroupFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// MountCgroup mounts the cgroup filesystem read-only at target inside
// root, as Docker does: on a cgroup v2 host one cgroup2 mount; on a v1
// or hybrid host a tmpfs holding one read-only mount per hierarchy the
// box is in (and the v2 tree as "unified"), the tmpfs itself read-only
// last. What each shows as its root is the box's cgroup once it has a
// cgroup namespace of its own (cgroup_namespaces(7)), else the host's
// whole tree.
func MountCgroup(k Kernel, root, target string) (*step.Step, error) {
	st := &step.Step{Command: "mount cgroup " + target, Man: []string{"mount(2)", "cgroups(7)", "cgroup_namespaces(7)"}}
	fail := func(err error) (*step.Step, error) { return st, fmt.Errorf("mount cgroup: %w", err) }
	pid, err := strconv.Atoi(path.Base(k.Proc()))
	if err != nil {
		return fail(fmt.Errorf("%s: %w", k.Proc(), err))
	}
	p, err := procfs.NewProc(pid)
	if err != nil {
		return fail(err)
	}
	cgs, err := p.Cgroups()
	if err != nil {
		return fail(fmt.Errorf("read %s/cgroup: %w", k.Proc(), err))
	}
	var v1 []procfs.Cgroup
	for _, c := range cgs {
		if c.HierarchyID != 0 && len(c.Controllers) > 0 {
			v1 = append(v1, c)
		}
	}
	st.Undo = "umount -R " + shellQuote(path.Join(root, target))
	// The hierarchy's options as the host has them, named again: a
	// cgroup2 mount from the host's cgroup namespace sets them all.
	hostMounts, err := procfs.GetMounts()
	if err != nil {
		return fail(fmt.Errorf("read the host's mount table: %w", err))
	}
	v2opts := cgroups.V2MountOptions(hostMounts)
	if len(v1) == 0 {
		// The kernel refuses a superblock on a mount of itself (EBUSY):
		// a cgroup2 mount made there before, say while the cgroup
		// namespace's root was the host's, is detached first, so the new
		// one shows the namespace as it is now.
		if mis, err := p.MountInfo(); err == nil {
			at := path.Join(root, target)
			for _, mi := range mis {
				if mi.MountPoint == at && mi.FSType == "cgroup2" {
					if err := umountCall(k, st, at, unix.MNT_DETACH); err != nil {
						return fail(err)
					}
					st.Shell = append(st.Shell, "umount -l "+shellQuote(at))
					break
				}
			}
		}
		host, _, err := mountSimple(k, st, root, target, "cgroup2", "cgroup2", cgroupFlags, v2opts)
		if err != nil {
			return fail(err)
		}
		st.Shell = append(st.Shell, "mount -t cgroup2 -o "+withOpts("ro,nosuid,nodev,noexec", v2opts)+" cgroup2 "+shellQuote(host))
		st.Tell("mounted the cgroup2 filesystem read-only at "+target, "will mount the cgroup2 filesystem read-only at "+target)
		return st, nil
	}
	host, created, err := mountSimple(k, st, root, target, "tmpfs", "tmpfs", tmpfsFlags, "mode=755,size=64k")
	if err != nil {
		return fail(err)
	}
	undo := func(err error) (*step.Step, error) {
		if uerr := umountCall(k, st, host, unix.MNT_DETACH); uerr != nil {
			err = fmt.Errorf("%w; %v", err, uerr)
		}
		removeAll(k, created)
		return fail(err)
	}
	st.Shell = []string{"mount -t tmpfs -o nosuid,nodev,mode=755,size=64k tmpfs " + shellQuote(host)}
	mounts := []struct{ name, fstype, opts string }{}
	for _, c := range v1 {
		name := strings.Join(c.Controllers, ",")
		opts := name
		if n, ok := strings.CutPrefix(name, "name="); ok {
			name, opts = n, "none,name="+n
		}
		mounts = append(mounts, struct{ name, fstype, opts string }{name, "cgroup", opts})
	}
	for _, c := range cgs {
		if c.HierarchyID == 0 {
			mounts = append(mounts, struct{ name, fstype, opts string }{"unified", "cgroup2", v2opts})
		}
	}
	for _, m := range mounts {
		dir := path.Join(host, m.name)
		if err := st.Do(fmt.Sprintf("mkdir(%s, 0755)", step.Quote(dir)), func() error { return k.Mkdir(dir, 0o755) }); err != nil {
			return undo(err)
		}
		if err := mountCall(k, st, "cgroup", dir, m.fstype, cgroupFlags, m.opts); err != nil {
			return undo(err)
		}
		st.Shell = append(st.Shell, "mkdir "+shellQuote(dir), fmt.Sprintf("mount -t %s -o %s cgroup %s", m.fstype, withOpts("ro,nosuid,nodev,noexec", m.opts), shellQuote(dir)))
	}
	if err := mountCall(k, st, "", host, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|tmpfsFlags, ""); err != nil {
		return undo(err)
	}
	st.Shell = append(st.Shell, "mount -o remount,bind,ro "+shellQuote(host))
	st.Tell(fmt.Sprintf("mounted the cgroup filesystem read-only at %s: %d hierarchies in a read-only tmpfs, as Docker mounts them", target, len(mounts)),
		fmt.Sprintf("will mount the cgroup filesystem read-only at %s: %d hierarchies in a read-only tmpfs, as Docker mounts them", target, len(mounts)))
	return st, nil
}

// withOpts is flags then opts, for a mount(8) -o.
func withOpts(flags, opts string) string {
	if opts == "" {
		return flags
	}
	return flags + "," + opts
}
