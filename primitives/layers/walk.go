package layers

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"stepbox/primitives/inroot"
)

// Kind is what an entry of a layer is, as overlayfs sees it.
type Kind string

const (
	File      Kind = "file"
	Dir       Kind = "dir"
	Symlink   Kind = "symlink"
	Whiteout  Kind = "whiteout"   // char device 0/0: hides the path in the layers below
	OpaqueDir Kind = "opaque dir" // dir with overlay.opaque=y: hides the dir's contents in the layers below
	Other     Kind = "other"      // devices, fifos, sockets
)

// Entry is one path in a layer (or in any overlay upper dir).
type Entry struct {
	Path   string // as the box sees it, e.g. "/etc/motd"
	Kind   Kind
	Mode   fs.FileMode // type and permission bits, as lstat(2) reports them
	Size   int64       // bytes, for files
	Target string      // for symlinks: where they point
}

// Walk lists every path in layer name, parents before children, in
// lexical order.
func (s *Store) Walk(name string) ([]Entry, error) {
	if _, err := s.Get(name); err != nil {
		return nil, err
	}
	return WalkDir(s.Root(name))
}

// WalkDir lists every path under root as Walk does; overlay code uses it
// on upper dirs too, where copy-ups, whiteouts and opaque dirs appear. A
// tree it cannot read whole is an error.
func WalkDir(root string) ([]Entry, error) {
	out, skipped, err := WalkBounded(root)
	if err == nil && skipped.Any() {
		err = fmt.Errorf("walk layer %s: %s", root, skipped)
	}
	return out, err
}

// WalkBounded is WalkDir for a tree an image or a box made: it stops at
// inroot's limits and leaves out what it cannot read, saying so in
// skipped, instead of failing.
func WalkBounded(root string) ([]Entry, inroot.Skipped, error) {
	var out []Entry
	skipped, err := inroot.Walk(root, inroot.WalkLimits, func(p string, d fs.DirEntry, _ error) error {
		if p == root {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return inroot.Unreadable(err)
		}
		e := Entry{Path: "/" + filepath.ToSlash(p[len(root)+1:]), Kind: kindOf(fi), Mode: fi.Mode()}
		switch e.Kind {
		case File:
			e.Size = fi.Size()
		case Symlink:
			if e.Target, err = os.Readlink(p); err != nil {
				return inroot.Unreadable(err)
			}
		case Dir:
			if opaque(p) {
				e.Kind = OpaqueDir
			}
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, skipped, fmt.Errorf("walk layer %s: %w", root, err)
	}
	return out, skipped, nil
}

// opaque reports whether dir carries overlayfs's opaque mark: the xattr
// trusted.overlay.opaque, or user.overlay.opaque for overlays mounted with
// userxattr, set to "y". Reading trusted.* needs CAP_SYS_ADMIN; without
// it, or with no such xattr (ENODATA), the dir counts as plain.
func opaque(dir string) bool {
	buf := make([]byte, 1)
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		n, err := unix.Lgetxattr(dir, attr, buf)
		if err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}
