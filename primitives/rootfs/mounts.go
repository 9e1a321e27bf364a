package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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

// MountTable is the mount table of one process, as far as it is kept.
type MountTable struct {
	PID    int
	Mounts []Mount // in mountinfo order, parents before children: the first MountsKept
	Total  int     // every mount of the table, kept or not (0: len(Mounts))
	// Cut says why the read stopped before the table's end (a
	// MountsCutError's text): Total is then the mounts read so far.
	Cut string
}

// Count is how many mounts the table holds, kept or not.
func (t MountTable) Count() int { return max(t.Total, len(t.Mounts)) }

// Mounts reads the mount table of process pid from /proc/PID/mountinfo.
// For a box process it is the box's mount namespace as its main thread
// sees it. It keeps the first MountsKept mounts and counts the rest.
func Mounts(pid int) (MountTable, error) {
	return MountsIn("/proc", pid)
}

// MountsIn reads the mount table of pid from the proc filesystem at proc,
// so tests can point it at a fixture tree.
func MountsIn(proc string, pid int) (MountTable, error) {
	return MountsOf(context.Background(), proc, pid)
}

// MountsOf reads the mount table of pid until ctx ends: cut short, it
// returns what it read, with Cut set, and the *MountsCutError.
func MountsOf(ctx context.Context, proc string, pid int) (MountTable, error) {
	path := filepath.Join(proc, strconv.Itoa(pid), "mountinfo")
	f, err := os.Open(path)
	if err != nil {
		return MountTable{}, fmt.Errorf("mount table of %d: open %s: %w", pid, path, err)
	}
	defer f.Close()
	t, err := readMountTable(ctx, f, pid)
	if cut := (*MountsCutError)(nil); errors.As(err, &cut) {
		t.Cut = cut.Error()
		return t, fmt.Errorf("mount table of %d: %w", pid, err)
	}
	if err != nil {
		return t, fmt.Errorf("mount table of %d: %s: %w", pid, path, err)
	}
	return t, nil
}

// sortOptions orders a mountinfo option list as findmnt users read it:
// rw/ro first, the rest sorted, each key once (the last one given).
func sortOptions(list string) string {
	opts := strings.Split(list, ",")
	key := func(o string) string { k, _, _ := strings.Cut(o, "="); return k }
	rank := func(o string) int {
		if k := key(o); k == "rw" || k == "ro" {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(opts, func(a, b string) int {
		if r := rank(a) - rank(b); r != 0 {
			return r
		}
		return strings.Compare(key(a), key(b))
	})
	// Of equal keys the last given wins, as it does for the kernel.
	out := opts[:0]
	for i, o := range opts {
		if rank(o) == 0 && i+1 < len(opts) && rank(opts[i+1]) == 0 || rank(o) == 1 && i+1 < len(opts) && key(opts[i+1]) == key(o) {
			continue
		}
		out = append(out, o)
	}
	return strings.Join(out, ",")
}

// propagation formats the optional fields of mountinfo as findmnt's
// PROPAGATION column would, with the peer group ids.
func propagation(fields []string) string {
	var out []string
	for _, k := range []string{"shared", "master", "propagate_from", "unbindable"} {
		for _, f := range fields {
			if name, _, _ := strings.Cut(f, ":"); name == k {
				out = append(out, f)
				break
			}
		}
	}
	if len(out) == 0 {
		return "private"
	}
	return strings.Join(out, " ")
}

// MountDiffKept is how many mounts of each kind (added, removed,
// changed) a MountDiff keeps; the others are counted.
const MountDiffKept = 100

// MountDiff is how a box's mount table differs from the host's (or from
// itself before a step). Mounts are paired by mount point (the n-th
// mount on a point with the n-th).
type MountDiff struct {
	Added   []Mount       // in the box only: the first MountDiffKept
	Removed []Mount       // in the host only: the first MountDiffKept
	Changed []MountChange // on the same point, but not the same: the first MountDiffKept
	Same    int           // identical in both
	// How many mounts were added, removed and changed, kept or not.
	AddedCount, RemovedCount, ChangedCount int
	// OldCut is how many mounts of the table compared against were not
	// kept (MountsKept): the box's mounts were paired with the others
	// only, and one of those cut off may show as added.
	OldCut int
	// Cut says why the read of the newer table stopped before its end
	// (a MountsCutError's text): only the mounts read were compared.
	Cut string
}

// Counts is how many mounts the diff found added, removed and changed,
// kept or not.
func (d MountDiff) Counts() (added, removed, changed int) {
	return max(d.AddedCount, len(d.Added)), max(d.RemovedCount, len(d.Removed)), max(d.ChangedCount, len(d.Changed))
}

// MountChange is a mount point whose mount differs between host and box.
type MountChange struct {
	Host, Box Mount
	What      []string // which of: fstype, source, device, root, options, propagation
}

// mountDiffer pairs a table's mounts, streamed, with old's, by mount
// point. It holds old's kept mounts and at most MountDiffKept of each
// kind: bounded, whatever the table streamed holds.
type mountDiffer struct {
	d     MountDiff
	old   MountTable
	oldAt map[string][]Mount
	used  map[string]int
}

func newMountDiffer(old MountTable) *mountDiffer {
	x := &mountDiffer{old: old, oldAt: map[string][]Mount{}, used: map[string]int{}}
	x.d.OldCut = old.Count() - len(old.Mounts)
	for _, m := range old.Mounts {
		x.oldAt[m.Point] = append(x.oldAt[m.Point], m)
	}
	return x
}

func (x *mountDiffer) add(b Mount) error {
	d := &x.d
	n := x.used[b.Point]
	if n >= len(x.oldAt[b.Point]) {
		if d.AddedCount++; len(d.Added) < MountDiffKept {
			d.Added = append(d.Added, b)
		}
		return nil
	}
	x.used[b.Point]++
	h := x.oldAt[b.Point][n]
	if what := mountDifferences(h, b); len(what) > 0 {
		if d.ChangedCount++; len(d.Changed) < MountDiffKept {
			d.Changed = append(d.Changed, MountChange{Host: h, Box: b, What: what})
		}
	} else {
		d.Same++
	}
	return nil
}

func (x *mountDiffer) done() MountDiff {
	d := x.d
	for _, h := range x.old.Mounts {
		if x.used[h.Point] > 0 {
			x.used[h.Point]--
			continue
		}
		if d.RemovedCount++; len(d.Removed) < MountDiffKept {
			d.Removed = append(d.Removed, h)
		}
	}
	return d
}

// DiffMounts compares a box's mount table with the host's, by mount point,
// filesystem (type, source, device, root), options and propagation.
// Mount IDs are not compared: a new mount namespace copies every mount
// under new IDs. Only the mounts each table kept are compared.
func DiffMounts(host, box MountTable) MountDiff {
	x := newMountDiffer(host)
	for _, b := range box.Mounts {
		x.add(b)
	}
	return x.done()
}

// DiffMountsOf compares the mount table of pid, read from the proc
// filesystem at proc as a stream, with old: every mount of pid's table
// is compared, and the diff stays bounded (MountDiffKept). Cut short by
// ctx, it returns the diff of what it read, with Cut set, and the
// *MountsCutError.
func DiffMountsOf(ctx context.Context, old MountTable, proc string, pid int) (MountDiff, error) {
	x := newMountDiffer(old)
	err := ScanMounts(ctx, proc, pid, x.add)
	if cut := (*MountsCutError)(nil); errors.As(err, &cut) {
		// The host's mounts not yet paired are not "gone": drop them.
		d := x.done()
		d.Removed, d.RemovedCount, d.Cut = nil, 0, cut.Error()
		return d, err
	}
	if err != nil {
		return MountDiff{}, err
	}
	return x.done(), nil
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
