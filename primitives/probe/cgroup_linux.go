package probe

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// hierarchy is one line of /proc/self/cgroup: a hierarchy the box is in,
// and its cgroup there, relative to its cgroup namespace's root.
type hierarchy struct {
	v2   bool
	opts string // mount options naming a v1 hierarchy: its controllers, or none,name=X
	path string
}

func hierarchies() ([]hierarchy, error) {
	self, err := procfs.Self()
	if err != nil {
		return nil, err
	}
	cgs, err := self.Cgroups()
	if err != nil {
		return nil, err
	}
	var hs []hierarchy
	for _, c := range cgs {
		h := hierarchy{v2: c.HierarchyID == 0, path: c.Path, opts: strings.Join(c.Controllers, ",")}
		if strings.HasPrefix(h.opts, "name=") {
			h.opts = "none," + h.opts
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// mounted reports whether m is a mount of h.
func (h hierarchy) mounted(m *procfs.MountInfo) bool {
	if h.v2 {
		return m.FSType == "cgroup2"
	}
	if m.FSType != "cgroup" {
		return false
	}
	for _, o := range strings.Split(strings.TrimPrefix(h.opts, "none,"), ",") {
		k, v, _ := strings.Cut(o, "=")
		if got, ok := m.SuperOptions[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// mount mounts h at dir (in a private mount namespace, see privately);
// v2opts are the host's cgroup2 options (Host.Cgroup2Opts), which a
// cgroup2 mount must name again to leave them as they are.
func (h hierarchy) mount(dir, v2opts string) error {
	fstype, opts := "cgroup", h.opts
	if h.v2 {
		fstype, opts = "cgroup2", v2opts
	}
	if err := unix.Mount("cgroup", dir, fstype, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mount(\"cgroup\", %s, %q, MS_NOSUID|MS_NODEV|MS_NOEXEC, %q): %w", dir, fstype, opts, err)
	}
	return nil
}

// mountDir is an existing directory to mount over in a private mount
// namespace: nothing is created in the box's files.
func mountDir() string {
	for _, d := range []string{"/tmp", "/mnt", "/run", "/dev", "/proc"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			return d
		}
	}
	return "/"
}

// probeReleaseAgent asks for write access to a v1 hierarchy's
// release_agent, a program the host's kernel runs as root: first on the
// box's own cgroup mounts, then on one it mounts itself. It never writes
// it, nor notify_on_release.
func probeReleaseAgent(Host) Result {
	hs, err := hierarchies()
	if err != nil {
		return closed("none", "read /proc/self/cgroup: %v", err)
	}
	var v1 []hierarchy
	for _, h := range hs {
		if !h.v2 && h.opts != "" {
			v1 = append(v1, h)
		}
	}
	if len(v1) == 0 {
		return closed("nov1", "no cgroup v1 hierarchy on this host: release_agent is v1's")
	}
	var seen error
	if mounts, err := procfs.GetMounts(); err == nil {
		for _, m := range mounts {
			if m.FSType != "cgroup" {
				continue
			}
			p := path.Join(m.MountPoint, "release_agent")
			if err := unix.Access(p, unix.W_OK); err == nil {
				return open("mounted", "access(%s, W_OK) = 0 on the box's own cgroup mount", p)
			} else if !errors.Is(err, unix.ENOENT) {
				seen = fmt.Errorf("access(%s, W_OK): %w", p, err)
			}
		}
	}
	h := v1[0]
	return privately(func() Result {
		dir := mountDir()
		if err := h.mount(dir, ""); err != nil { // v1 only
			return closed("mount", "%v%s", err, also(seen))
		}
		p := path.Join(dir, "release_agent")
		err := unix.Access(p, unix.W_OK)
		switch {
		case err == nil:
			return open("mount", "mounted the %s hierarchy itself: access(release_agent, W_OK) = 0%s", h.opts, also(seen))
		case errors.Is(err, unix.ENOENT):
			return closed("cgroupns", "mounted the %s hierarchy, but its root is the box's cgroup (a cgroup namespace of its own): no release_agent there", h.opts)
		}
		return closed("mount", "mounted the %s hierarchy: access(release_agent, W_OK): %v", h.opts, err)
	})
}

// also adds what the box's own cgroup mounts answered, if anything.
func also(err error) string {
	if err == nil {
		return ""
	}
	return "; on the box's own mount, " + err.Error()
}

// probeCgroupEscape asks for write access to cgroup.procs of the box's
// parent cgroup, which would move the box out of its limits: on the
// box's cgroup mounts, then on one it mounts itself. It never writes.
// Where neither is writable it still reports a cgroup namespace of the
// box's own whose root is above the box's cgroup: made before `cgroup
// attach`, it shows the box the host's whole cgroup tree.
func probeCgroupEscape(h Host) Result {
	r := cgroupEscape(h.Cgroup2Opts)
	if r.State == Open {
		return r
	}
	if o, ok := cgroupNSAbove(h); ok {
		return o
	}
	return r
}

// cgroupNSAbove reports a cgroup namespace of the box's own whose root is
// not the box's cgroup (/proc/self/cgroup shows a path below the root),
// or a cgroup mount of the box whose root is above its namespace's root
// (mountinfo shows it as /..).
func cgroupNSAbove(h Host) (Result, bool) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/cgroup", &st); err != nil || h.CgroupNS == 0 || st.Ino == h.CgroupNS {
		return Result{}, false // the host's cgroup namespace: the other ways answer
	}
	hs, err := hierarchies()
	if err != nil {
		return Result{}, false
	}
	for _, c := range hs {
		if c.path != "/" {
			return open("nsroot", "the box's cgroup namespace was made before `cgroup attach`: /proc/self/cgroup shows %s, not /, so its root is the host's and the box sees the host's cgroup tree (release_agent, sibling boxes, other sessions)", c.path), true
		}
	}
	if mounts, err := procfs.GetMounts(); err == nil {
		for _, m := range mounts {
			if (m.FSType == "cgroup" || m.FSType == "cgroup2") && strings.HasPrefix(m.Root, "/..") && reachable(m) {
				return open("mountroot", "the box's cgroup mount at %s has its root at %s, above the box's cgroup: it was mounted before the box's cgroup namespace was rooted at its cgroup, and shows the host's cgroup tree", m.MountPoint, m.Root), true
			}
		}
	}
	return Result{}, false
}

// reachable reports whether m is the mount its mount point reaches now:
// one covered by a later mount (there or above it) is out of the box's
// reach without CAP_SYS_ADMIN to unmount, which the other ways try.
func reachable(m *procfs.MountInfo) bool {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, m.MountPoint, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
		return false
	}
	return stx.Mask&unix.STATX_MNT_ID == 0 || stx.Mnt_id == uint64(m.MountID)
}

func cgroupEscape(v2opts string) Result {
	hs, err := hierarchies()
	if err != nil {
		return closed("none", "read /proc/self/cgroup: %v", err)
	}
	var target *hierarchy
	for i, h := range hs {
		if h.path != "/" && (target == nil || target.opts == "" && h.opts != "") {
			target = &hs[i]
		}
	}
	if target == nil {
		return closed("root", "the box's cgroup is the root of every hierarchy it can see (a cgroup namespace of its own)")
	}
	var seen error
	if mounts, err := procfs.GetMounts(); err == nil {
		for _, m := range mounts {
			for _, h := range hs {
				if !h.mounted(m) || h.path == m.Root || !strings.HasPrefix(h.path, strings.TrimSuffix(m.Root, "/")+"/") {
					continue
				}
				p := path.Join(m.MountPoint, strings.TrimPrefix(path.Dir(h.path), m.Root), "cgroup.procs")
				if err := unix.Access(p, unix.W_OK); err == nil {
					return open("mounted", "access(%s, W_OK) = 0: the box's parent cgroup, on the box's own cgroup mount", p)
				} else {
					seen = fmt.Errorf("access(%s, W_OK): %w", p, err)
				}
			}
		}
	}
	h := *target
	return privately(func() Result {
		dir := mountDir()
		if err := h.mount(dir, v2opts); err != nil {
			return closed("mount", "%v%s", err, also(seen))
		}
		p := path.Join(dir, path.Dir(h.path), "cgroup.procs")
		if err := unix.Access(p, unix.W_OK); err != nil {
			return closed("mount", "mounted the cgroup hierarchy: access(%s, W_OK): %v", p, err)
		}
		return open("mount", "mounted the cgroup hierarchy itself: access(%s, W_OK) = 0 for the parent of %s%s", p, h.path, also(seen))
	})
}
