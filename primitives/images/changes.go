package images

import (
	"fmt"
	"strings"

	"stepbox/primitives/layers"
)

// LayerChanges is what one image layer does to the layers below it.
type LayerChanges struct {
	Layer    Layer
	Added    []string // a directory ends in "/"
	Modified []string
	Removed  []string // whiteouts, and "DIR/*" for an opaque directory
	Skipped  string   // what reading the layer left out (too deep, too many), or ""
}

// Changes reads each unpacked layer of im, bottom first, and sorts its
// paths into added (nothing below had it), modified (a layer below had
// it) and removed (whiteouts; an opaque dir hides what was below it).
func (s *Store) Changes(im Image) ([]LayerChanges, error) {
	below := map[string]bool{} // the union of the layers so far
	var out []LayerChanges
	for _, l := range im.Layers {
		entries, skipped, err := layers.WalkBounded(s.Layers.Root(l.Name))
		if err != nil {
			return nil, fmt.Errorf("image show %s: layer %s: %w", im.Name, l.Name, err)
		}
		c := LayerChanges{Layer: l, Skipped: skipped.String()}
		var adds []string
		for _, e := range entries {
			switch e.Kind {
			case layers.Whiteout:
				c.Removed = append(c.Removed, e.Path)
				removeTree(below, e.Path)
				continue
			case layers.OpaqueDir:
				if hasUnder(below, e.Path) {
					c.Removed = append(c.Removed, e.Path+"/*")
				}
				removeUnder(below, e.Path)
			}
			if below[e.Path] {
				if e.Kind != layers.Dir && e.Kind != layers.OpaqueDir {
					c.Modified = append(c.Modified, e.Path)
				}
			} else if e.Kind == layers.Dir || e.Kind == layers.OpaqueDir {
				c.Added = append(c.Added, e.Path+"/")
			} else {
				c.Added = append(c.Added, e.Path)
			}
			adds = append(adds, e.Path)
		}
		for _, p := range adds {
			below[p] = true
		}
		out = append(out, c)
	}
	return out, nil
}

func removeTree(set map[string]bool, p string) {
	delete(set, p)
	removeUnder(set, p)
}

func removeUnder(set map[string]bool, dir string) {
	for k := range set {
		if strings.HasPrefix(k, dir+"/") {
			delete(set, k)
		}
	}
}

func hasUnder(set map[string]bool, dir string) bool {
	for k := range set {
		if strings.HasPrefix(k, dir+"/") {
			return true
		}
	}
	return false
}
