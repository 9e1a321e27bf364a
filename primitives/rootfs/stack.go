package rootfs

// StackSnapshot is a box's layer stack read live from the host dirs: the
// layers, the box's upper dir and what it changed, and, when asked for,
// the layer each path of the merged view comes from.
type StackSnapshot struct {
	Merged  string      // host path of the overlay's mount point
	Lowers  []LayerInfo // bottom→top, as mounted
	Upper   LayerInfo   // the box's writable layer, named "upper"
	Changes []Change    // what the upper dir holds, by path
	Files   []Origin    // every path of the merged view, by path; nil unless asked for
	Entered bool        // the box's root is the merged view (pivot_root or chroot), not just a mount
}

// UpperName is the layer name Origin.Layer gives the upper dir.
const UpperName = "upper"

// LayerInfo is one directory of the stack and what it holds.
type LayerInfo struct {
	Name      string
	Dir       string // host path
	Files     int    // entries that are not directories or whiteouts
	Dirs      int
	Whiteouts int
	Origin    string // an image's layer: the image and the command that made it
	Skipped   string // what reading it left out (too deep, too many, unreadable), or ""
}

// ChangeKind is what the upper dir's entry for a path means.
type ChangeKind rune

const (
	Created  ChangeKind = '+' // not in any layer below
	CopiedUp ChangeKind = '~' // in a layer below, copied up to be changed
	Whiteout ChangeKind = '-' // deleted: hides the path of the layers below
)

func (k ChangeKind) String() string { return string(k) }

// Change is one entry of the upper dir.
type Change struct {
	Path   string // as the box sees it, e.g. /etc/motd
	Kind   ChangeKind
	Dir    bool
	Opaque bool   // a directory that hides the contents of the layers below (rm -rf then mkdir)
	Below  string // the topmost layer below that holds the path (copy-ups, whiteouts), if any
}

// Origin is where a path of the merged view comes from: the topmost
// layer that holds it and that no whiteout or opaque dir hides.
type Origin struct {
	Path  string
	Layer string // a lower's name, or UpperName
	Dir   bool
}
