package rootfs

import (
	"fmt"
	"sort"
	"strings"

	"github.com/prometheus/procfs"
)

// Mount is one line of a mount table, as /proc/PID/mountinfo gives it
// (proc(5)).
type Mount struct {
	ID, Parent  int
	Dev         string // major:minor of the filesystem: two mounts of one filesystem share it
	Root        string // the directory of the filesystem mounted here ("/" unless a bind of a subdir)
	Point       string // the mount point, as the process sees it
	FSType      string
	Source      string
	Options     string // per-mount options, rw/ro first, e.g. "rw,nosuid,relatime"
	Super       string // superblock options, e.g. overlay's "lowerdir=…"
	Propagation string // "shared:1", "master:1", "shared:2 master:1", "unbindable" or "private"
}

// MountTable is the mount table of one process.
type MountTable struct {
	PID    int
	Mounts []Mount // in mountinfo order: parents before children
}

// Mounts reads the mount table of process pid from /proc/PID/mountinfo.
// For a box process it is the box's mount namespace as its main thread sees it.
func Mounts(pid int) (MountTable, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return MountTable{}, fmt.Errorf("mount table of %d: %w", pid, err)
	}
	return MountsIn(fs, pid)
}

// MountsIn reads the mount table of pid from the proc filesystem fs, so
// tests can point it at a fixture tree.
func MountsIn(fs procfs.FS, pid int) (MountTable, error) {
	infos, err := fs.GetProcMounts(pid)
	if err != nil {
		return MountTable{}, fmt.Errorf("mount table of %d: %w", pid, err)
	}
	t := MountTable{PID: pid, Mounts: make([]Mount, 0, len(infos))}
	for _, m := range infos {
		t.Mounts = append(t.Mounts, Mount{
			ID: m.MountID, Parent: m.ParentID, Dev: m.MajorMinorVer, Root: m.Root, Point: m.MountPoint,
			FSType: m.FSType, Source: m.Source,
			Options: joinOptions(m.Options), Super: joinOptions(m.SuperOptions),
			Propagation: propagation(m.OptionalFields),
		})
	}
	return t, nil
}

// joinOptions turns procfs's option map back into a list, rw/ro first,
// the rest sorted (mountinfo's own order is lost in the map).
func joinOptions(opts map[string]string) string {
	var first string
	rest := make([]string, 0, len(opts))
	for k, v := range opts {
		o := k
		if v != "" {
			o += "=" + v
		}
		if k == "rw" || k == "ro" {
			first = o
			continue
		}
		rest = append(rest, o)
	}
	sort.Strings(rest)
	if first != "" {
		rest = append([]string{first}, rest...)
	}
	return strings.Join(rest, ",")
}

// propagation formats the optional fields of mountinfo as findmnt's
// PROPAGATION column would, with the peer group ids.
func propagation(fields map[string]string) string {
	var out []string
	for _, k := range []string{"shared", "master", "propagate_from", "unbindable"} {
		if v, ok := fields[k]; ok {
			if v != "" {
				k += ":" + v
			}
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return "private"
	}
	return strings.Join(out, " ")
}

// MountDiff is how a box's mount table differs from the host's. Mounts
// are paired by mount point (the n-th mount on a point with the n-th).
type MountDiff struct {
	Added   []Mount       // in the box only
	Removed []Mount       // in the host only
	Changed []MountChange // on the same point, but not the same
	Same    int           // identical in both
}

// MountChange is a mount point whose mount differs between host and box.
type MountChange struct {
	Host, Box Mount
	What      []string // which of: fstype, source, device, root, options, propagation
}

// DiffMounts compares a box's mount table with the host's, by mount point,
// filesystem (type, source, device, root), options and propagation.
// Mount IDs are not compared: a new mount namespace copies every mount
// under new IDs.
func DiffMounts(host, box MountTable) MountDiff {
	var d MountDiff
	hostAt := map[string][]Mount{}
	for _, m := range host.Mounts {
		hostAt[m.Point] = append(hostAt[m.Point], m)
	}
	used := map[string]int{}
	for _, b := range box.Mounts {
		n := used[b.Point]
		if n >= len(hostAt[b.Point]) {
			d.Added = append(d.Added, b)
			continue
		}
		used[b.Point]++
		h := hostAt[b.Point][n]
		if what := mountDifferences(h, b); len(what) > 0 {
			d.Changed = append(d.Changed, MountChange{Host: h, Box: b, What: what})
		} else {
			d.Same++
		}
	}
	for _, h := range host.Mounts {
		if used[h.Point] > 0 {
			used[h.Point]--
			continue
		}
		d.Removed = append(d.Removed, h)
	}
	return d
}

func mountDifferences(h, b Mount) []string {
	var what []string
	for _, f := range []struct {
		name string
		h, b string
	}{
		{"fstype", h.FSType, b.FSType},
		{"source", h.Source, b.Source},
		{"device", h.Dev, b.Dev},
		{"root", h.Root, b.Root},
		{"options", h.Options + " " + h.Super, b.Options + " " + b.Super},
		{"propagation", h.Propagation, b.Propagation},
	} {
		if f.h != f.b {
			what = append(what, f.name)
		}
	}
	return what
}
