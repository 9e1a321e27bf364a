package primitives

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/export"
	"stepbox/primitives/rootfs"
)

// Export describes what the box has, for `export bundle`: its
// namespaces, hostname, root and the mounts inside it, its cgroup limits,
// the capabilities, no_new_privs and seccomp rules its commands get
// (Security), and the process its image runs (or sh), read from the
// kernel now.
func (b *Box) Export() (export.Box, error) {
	f := b.FS()
	if f.Merged == "" {
		return export.Box{}, fmt.Errorf("box %s: %w: `mount overlay IMAGE|LAYER…` first", b.Name, export.ErrNoRoot)
	}
	p := b.ProcessDefaults()
	e := export.Box{Name: b.Name, Namespaces: b.Unshared(), Root: b.HostRoot(), Args: p.Argv, Cwd: p.Dir, Chroot: f.Chrooted}
	for _, l := range f.Layers {
		e.Layers = append(e.Layers, l.Dir)
	}
	if len(e.Args) == 0 {
		e.Args = []string{"sh"}
	}
	if b.User && !b.Has("user") {
		e.Namespaces = append(e.Namespaces, "user")
	}
	if b.Has("uts") {
		e.Hostname = b.Hostname()
	}
	e.Env = mergeEnv(append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=xterm"}, p.Env...))
	if p.IDs != nil {
		e.UID, e.GID = p.IDs.UID, p.IDs.GID
	}
	sec := b.Security()
	c := sec.Caps
	e.Caps = export.Caps{Bounding: DecodeCaps(c.Bounding), Effective: DecodeCaps(c.Effective), Permitted: DecodeCaps(c.Permitted),
		Inheritable: DecodeCaps(c.Inheritable), Ambient: DecodeCaps(c.Ambient)}
	e.CapsSet, e.NoNewPrivs, e.Seccomp = sec.CapsSet, sec.NoNewPrivs, sec.Seccomp.Rules
	var err error
	if e.Mounts, err = b.exportMounts(f, &e.LeftOut); err != nil {
		return e, err
	}
	if f.Masked {
		e.MaskedPaths, e.ReadonlyPaths = slices.Clone(rootfs.MaskedPaths), slices.Clone(rootfs.ReadonlyPaths)
	}
	if b.Cgroup() != nil {
		if err := b.exportLimits(&e); err != nil {
			return e, err
		}
	}
	if b.Has("time") {
		c, err := b.ClockOffsets()
		if err != nil {
			return e, err
		}
		e.Clocks = map[string]time.Duration{}
		if c.Monotonic != 0 {
			e.Clocks["monotonic"] = c.Monotonic
		}
		if c.Boottime != 0 {
			e.Clocks["boottime"] = c.Boottime
		}
	}
	for _, ns := range e.Namespaces {
		if ns != "user" {
			continue
		}
		pid := b.PID()
		if e.UIDMap, err = readIDMap(fmt.Sprintf("/proc/%d/uid_map", pid)); err != nil {
			return e, err
		}
		if e.GIDMap, err = readIDMap(fmt.Sprintf("/proc/%d/gid_map", pid)); err != nil {
			return e, err
		}
	}
	return e, nil
}

// exportMounts lists the filesystems mounted inside the box's root, as
// the box's mount table shows them, parents first, and adds to leftOut
// those it cannot carry. The table is read as a stream; a box holding
// more such mounts than rootfs.MountsKept is refused, not exported in
// part.
func (b *Box) exportMounts(f BoxFS, leftOut *[]string) ([]export.Mount, error) {
	root := f.root()
	var out []export.Mount
	n := 0
	// A cut read would export part of the box's mounts: it fails.
	ctx, cancel := context.WithTimeout(context.Background(), rootfs.StepReadTime)
	defer cancel()
	err := rootfs.ScanMounts(ctx, "/proc", b.CommandPID(), func(m rootfs.Mount) error {
		em, target, ok := exportMount(m, f, root)
		if target == "" {
			return nil
		}
		if !ok {
			if !underDev(out, target) && len(*leftOut) <= rootfs.MountsKept {
				*leftOut = append(*leftOut, leftOutMount(m, target))
			}
			return nil
		}
		if n++; n > rootfs.MountsKept {
			return fmt.Errorf("it holds more than %d mounts to export (a bundle or script keeps at most %d): `umount` some inside the box first", rootfs.MountsKept, rootfs.MountsKept)
		}
		out = append(out, em)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("box %s: %w", b.Name, err)
	}
	return out, nil
}

// exportMount is m as an export lists it, if it does (ok), and its path
// in the box; target is "" for a mount no export concerns itself with:
// one outside the box's root (root), the root itself and `mount mask`'s.
func exportMount(m rootfs.Mount, f BoxFS, root string) (em export.Mount, target string, ok bool) {
	target = m.Point
	if root != "/" {
		rel, in := strings.CutPrefix(m.Point, root+"/")
		if !in {
			return export.Mount{}, "", false
		}
		target = "/" + rel
	}
	if target == "/" {
		return export.Mount{}, "", false
	}
	if f.Masked && (slices.Contains(rootfs.MaskedPaths, target) || slices.Contains(rootfs.ReadonlyPaths, target)) {
		return export.Mount{}, "", false // `mount mask`'s: the bundle's maskedPaths and readonlyPaths
	}
	if i := slices.IndexFunc(f.Volumes, func(v Volume) bool { return v.Target == target }); i >= 0 {
		// A volume: mountinfo does not say which host directory it
		// binds, so it comes from the `mount bind` step.
		v := f.Volumes[i]
		em := export.Mount{Target: target, Type: "bind", Source: v.Source}
		if v.ReadOnly {
			em.Options = []string{"ro"}
		}
		return em, target, true
	}
	switch m.FSType {
	case "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2":
		return export.Mount{Target: target, Type: m.FSType, Source: m.FSType, Options: mountOptions(m.Options, m.Super)}, target, true
	}
	return export.Mount{}, target, false
}

// underDev reports whether target is inside a /dev the export mounts:
// the runtime makes /dev's nodes itself, so `mount dev`'s binds of the
// host's nodes (a box in a user namespace cannot mknod) are not left out.
func underDev(mounts []export.Mount, target string) bool {
	return strings.HasPrefix(target, "/dev/") && slices.ContainsFunc(mounts, func(m export.Mount) bool { return m.Target == "/dev" })
}

// leftOutMount says what a mount the exports do not carry is: one the box
// made itself (`exec mount …`), whose source the host's view of it does
// not name (a bind of a host directory shows only its filesystem).
func leftOutMount(m rootfs.Mount, target string) string {
	if m.Root != "/" {
		return fmt.Sprintf("%s (%s, a bind mount of its %s)", target, m.FSType, m.Root)
	}
	return fmt.Sprintf("%s (%s)", target, m.FSType)
}

// mountOptions joins the per-mount flags and the superblock's options
// (tmpfs's size and mode, devpts's gid), without seclabel's kin.
func mountOptions(perMount, super string) []string {
	var out []string
	seen := map[string]bool{}
	for _, o := range append(strings.Split(perMount, ","), strings.Split(super, ",")...) {
		if o == "" || seen[o] || o == "seclabel" || (seen["ro"] && o == "rw") {
			continue
		}
		seen[o] = true
		out = append(out, o)
	}
	return out
}

// exportLimits reads the limits of the box's cgroup.
func (b *Box) exportLimits(e *export.Box) error {
	snap, err := b.CgroupSnapshot(nil)
	if err != nil {
		return fmt.Errorf("box %s: cgroup limits: %w", b.Name, err)
	}
	for _, n := range snap.Parent.Children {
		if n.Name != snap.BoxGroup {
			continue
		}
		st := n.Stats
		if st.Memory != nil && st.Memory.Max != cgroups.Unlimited {
			e.Memory = st.Memory.Max
		}
		if st.Pids != nil && st.Pids.Max != cgroups.Unlimited {
			e.Pids = st.Pids.Max
		}
		if st.CPU != nil && st.CPU.QuotaUsec != cgroups.Unlimited && st.CPU.QuotaUsec > 0 {
			e.CPUQuota, e.CPUPeriod = st.CPU.QuotaUsec, uint64(st.CPU.PeriodUsec)
		}
	}
	return nil
}

func readIDMap(file string) ([]specs.LinuxIDMapping, error) {
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var out []specs.LinuxIDMapping
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			continue
		}
		var n [3]uint64
		for i := range f {
			if n[i], err = strconv.ParseUint(f[i], 10, 32); err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: uint32(n[0]), HostID: uint32(n[1]), Size: uint32(n[2])})
	}
	return out, sc.Err()
}

// BundleOutOfReach says which directory on the way to the bundle at dir
// the root of e's user namespace may not search, and what to do, or ""
// (no such directory, or no user namespace). runc's init opens rootfs/
// by its path once it is that root, a host uid with no capability over
// host root's files (libcontainer/rootfs_linux.go, prepareRoot): a
// directory only host root may search (/root, go test's, 0700) fails it
// with EACCES. Only said, never changed: unlike the state dir's
// (letThrough), the directories above a bundle are the learner's.
func BundleOutOfReach(dir string, e export.Box) string {
	uid, uok := export.MappedRoot(e.UIDMap)
	gid, gok := export.MappedRoot(e.GIDMap)
	if !slices.Contains(e.Namespaces, "user") || !uok || !gok {
		return ""
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	for p := filepath.Dir(abs); ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err == nil && !searchable(st, uid, gid) {
			return fmt.Sprintf("runc's init reaches rootfs/ as the box's root, host uid %d, which may not search %s (mode %04o, owner %d): `runc run` fails there with permission denied. "+
				"`chmod o+x %s`, or export into a directory every user may search (as Docker keeps a remapped root's files under 0711 directories)", uid, p, st.Mode&0o7777, st.Uid, p)
		}
		if p == "/" {
			return ""
		}
	}
}
