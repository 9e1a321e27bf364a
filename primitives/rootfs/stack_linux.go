package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/inroot"
)

// ReadStack reads a box's layer stack from the host dirs: layers
// (bottom→top), the upper dir and the mount point's host path. It only
// reads, never mounts, so it works from any mount namespace; withFiles
// adds every merged path's origin. The upper dir's entries are:
//   - whiteouts (-): a 0/0 character device, or an empty file marked with
//     the overlay.whiteout xattr inside a dir marked overlay.opaque="x";
//   - copy-ups (~): a file that a layer below holds too, or a directory
//     marked opaque (overlay.opaque="y") that hides one;
//   - created (+): everything else, except directories a layer below
//     holds too, which overlayfs copies up only as parents of a change.
//
// (Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories").
func ReadStack(layers []Layer, upper, merged string, withFiles bool) (StackSnapshot, error) {
	snap := StackSnapshot{Merged: merged, Upper: LayerInfo{Name: UpperName, Dir: upper}, Lowers: make([]LayerInfo, len(layers))}

	// The lower layers' own merged view, built top layer first.
	lower := view{nodes: map[string]node{}, hidden: map[string]bool{}, opaque: map[string]bool{}}
	for i := len(layers) - 1; i >= 0; i-- {
		snap.Lowers[i] = LayerInfo{Name: layers[i].Name, Dir: layers[i].Dir, Origin: layers[i].Origin}
		var whiteouts, opaques []string // apply to the layers below only
		err := walkLayer(layers[i].Dir, &snap.Lowers[i], func(rel string, e entry) {
			if lower.covers(rel, e.dir) {
				return
			}
			if e.whiteout {
				whiteouts = append(whiteouts, rel)
				return
			}
			if _, ok := lower.nodes[rel]; !ok {
				lower.nodes[rel] = node{layer: i, dir: e.dir}
			}
			if e.opaque {
				opaques = append(opaques, rel)
			}
		})
		if err != nil {
			return StackSnapshot{}, fmt.Errorf("read layer %q: %w", layers[i].Name, err)
		}
		for _, p := range whiteouts {
			lower.hidden[p] = true
		}
		for _, p := range opaques {
			lower.opaque[p] = true
		}
	}

	up := view{nodes: map[string]node{}, hidden: map[string]bool{}, opaque: map[string]bool{}}
	err := walkLayer(upper, &snap.Upper, func(rel string, e entry) {
		p := "/" + rel
		// Below an opaque dir of the upper, nothing of the lowers shows.
		below, inLower := lower.nodes[rel]
		inLower = inLower && !up.opaqueAbove(rel)
		from := ""
		if inLower {
			from = layers[below.layer].Name
		}
		switch {
		case e.whiteout:
			up.hidden[rel] = true
			snap.Changes = append(snap.Changes, Change{Path: p, Kind: Whiteout, Below: from})
			return
		case e.opaque:
			up.opaque[rel] = true
			kind := Created
			if inLower {
				kind = CopiedUp
			}
			snap.Changes = append(snap.Changes, Change{Path: p, Kind: kind, Dir: true, Opaque: true, Below: from})
		case !inLower:
			snap.Changes = append(snap.Changes, Change{Path: p, Kind: Created, Dir: e.dir})
		case !e.dir || !below.dir:
			snap.Changes = append(snap.Changes, Change{Path: p, Kind: CopiedUp, Dir: e.dir, Below: from})
		}
		up.nodes[rel] = node{layer: -1, dir: e.dir}
	})
	if err != nil {
		return StackSnapshot{}, fmt.Errorf("read upper dir: %w", err)
	}
	sort.Slice(snap.Changes, func(i, j int) bool { return snap.Changes[i].Path < snap.Changes[j].Path })
	if !withFiles {
		return snap, nil
	}

	snap.Files = make([]Origin, 0, len(up.nodes)+len(lower.nodes))
	for rel, n := range up.nodes {
		snap.Files = append(snap.Files, Origin{Path: "/" + rel, Layer: UpperName, Dir: n.dir})
	}
	for rel, n := range lower.nodes {
		if _, ok := up.nodes[rel]; ok || up.covers(rel, n.dir) {
			continue
		}
		snap.Files = append(snap.Files, Origin{Path: "/" + rel, Layer: layers[n.layer].Name, Dir: n.dir})
	}
	sort.Slice(snap.Files, func(i, j int) bool { return snap.Files[i].Path < snap.Files[j].Path })
	return snap, nil
}

// node is a path of a merged view: the layer it comes from, and its type.
type node struct {
	layer int
	dir   bool
}

// view is the merged view of the layers read so far, from the top down.
type view struct {
	nodes  map[string]node
	hidden map[string]bool // whiteouts: the path and everything below it
	opaque map[string]bool // opaque dirs: everything below them
}

// covers reports whether a path of a lower layer is hidden by the layers
// already read: a whiteout on it or above it, an opaque dir or a non-dir
// above it, or a higher entry on it that does not merge (dir over dir).
func (v view) covers(rel string, dir bool) bool {
	if v.hidden[rel] {
		return true
	}
	for i := strings.IndexByte(rel, '/'); i >= 0; i = nextSlash(rel, i) {
		a := rel[:i]
		if v.hidden[a] || v.opaque[a] {
			return true
		}
		if n, ok := v.nodes[a]; ok && !n.dir {
			return true
		}
	}
	n, ok := v.nodes[rel]
	return ok && !(n.dir && dir)
}

// opaqueAbove reports whether an opaque dir lies above rel.
func (v view) opaqueAbove(rel string) bool {
	for i := strings.IndexByte(rel, '/'); i >= 0; i = nextSlash(rel, i) {
		if v.opaque[rel[:i]] {
			return true
		}
	}
	return false
}

func nextSlash(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// entry is what overlayfs makes of one directory entry of a layer.
type entry struct {
	dir, whiteout, opaque bool
}

// walkLayer calls fn for every path under dir (relative, parents before
// children) and counts what it finds into info. Only directories, char
// devices and empty files in "x"-marked dirs cost more than readdir.
//
// The tree is the box's or an image's: a walk stops at inroot's limits,
// and leaves out what it cannot read (a path past PATH_MAX), saying so in
// info.Skipped, rather than fail the panel for good.
func walkLayer(dir string, info *LayerInfo, fn func(rel string, e entry)) error {
	xdirs := map[string]bool{} // dirs that may hold xattr whiteouts
	skipped, err := inroot.Walk(dir, inroot.WalkLimits, func(p string, d fs.DirEntry, err error) error {
		rel := ""
		if p != dir {
			rel = p[len(dir)+1:]
		}
		var e entry
		switch t := d.Type(); {
		case t.IsDir():
			mark, err := opaqueMark(p)
			if err != nil {
				return inroot.Unreadable(err)
			}
			if p == dir {
				xdirs[rel] = mark == 'x'
				return nil
			}
			e.dir, e.opaque = true, mark == 'y'
			xdirs[rel] = mark == 'x'
		case t&fs.ModeCharDevice != 0:
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil {
				return inroot.Unreadable(&fs.PathError{Op: "lstat", Path: p, Err: err})
			}
			e.whiteout = st.Rdev == 0
		case t.IsRegular() && xdirs[parentRel(rel)]:
			w, err := xattrWhiteout(p)
			if err != nil {
				return inroot.Unreadable(err)
			}
			e.whiteout = w
		}
		switch {
		case e.whiteout:
			info.Whiteouts++
		case e.dir:
			info.Dirs++
		default:
			info.Files++
		}
		fn(rel, e)
		return nil
	})
	info.Skipped = skipped.String()
	return err
}

func parentRel(rel string) string {
	if d := path.Dir(rel); d != "." {
		return d
	}
	return ""
}

// overlayXattrs are the two namespaces overlayfs keeps its marks in:
// trusted.* normally, user.* for overlays mounted with userxattr.
var overlayXattrs = []string{"trusted.overlay.", "user.overlay."}

// opaqueMark returns the value of dir's overlay.opaque xattr: 'y' for an
// opaque dir, 'x' for one that may hold xattr whiteouts, 0 for none.
// trusted.* xattrs read as absent without CAP_SYS_ADMIN.
func opaqueMark(dir string) (byte, error) {
	buf := make([]byte, 1)
	for _, ns := range overlayXattrs {
		n, err := unix.Lgetxattr(dir, ns+"opaque", buf)
		switch {
		case err == nil && n == 1:
			return buf[0], nil
		case err == nil || noXattr(err):
		default:
			return 0, fmt.Errorf("getxattr %s %sopaque: %w", dir, ns, err)
		}
	}
	return 0, nil
}

// xattrWhiteout reports whether the file p carries overlay.whiteout.
func xattrWhiteout(p string) (bool, error) {
	for _, ns := range overlayXattrs {
		_, err := unix.Lgetxattr(p, ns+"whiteout", nil)
		switch {
		case err == nil:
			return true, nil
		case noXattr(err):
		default:
			return false, fmt.Errorf("getxattr %s %swhiteout: %w", p, ns, err)
		}
	}
	return false, nil
}

// noXattr reports an error that means "no such mark here".
func noXattr(err error) bool {
	return errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ERANGE)
}
