package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Layer is one read-only layer of a box's root filesystem: its name in the
// layer store and the host directory overlayfs stacks as a lowerdir.
type Layer struct {
	Name   string
	Dir    string
	Origin string `json:",omitempty"` // for an image's layer: the image and the command that made it
}

var (
	// ErrLayerTwice is returned when a layer, or its directory, is listed more than once.
	ErrLayerTwice = errors.New("layer listed twice")
	// ErrDirsOverlap is returned when one overlay directory lies inside another.
	ErrDirsOverlap = errors.New("overlay directories overlap")
)

// overlayDir is a directory overlayfs will use, named for error messages.
type overlayDir struct {
	role string // `layer "base"`, "upper dir", "work dir", "mount point"
	path string // as given
	real string // symlinks resolved, for comparisons
}

// checkOverlayDirs refuses, before anything is created, what overlayfs
// would refuse or mount wrongly: a layer named twice, the same directory
// under two names, and directories inside one another. Overlapping layers
// fail with ELOOP since Linux 5.2 ("overlapping lowerdir path",
// Documentation/filesystems/overlayfs.rst), and a mount point inside a
// layer would show the overlay inside itself.
func checkOverlayDirs(layers []Layer, upper, work, merged string) error {
	if len(layers) == 0 {
		return errors.New("no layers: an overlay needs at least one lower layer, e.g. `mount overlay base`")
	}
	var dirs []overlayDir
	names := map[string]bool{}
	for _, l := range layers {
		if names[l.Name] {
			return fmt.Errorf("%w: layer %q appears twice; overlayfs stacks each layer once, so list it once", ErrLayerTwice, l.Name)
		}
		names[l.Name] = true
		fi, err := os.Stat(l.Dir)
		if err != nil {
			return fmt.Errorf("layer %q: %w", l.Name, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("layer %q: %s is not a directory", l.Name, l.Dir)
		}
		dirs = append(dirs, overlayDir{role: fmt.Sprintf("layer %q", l.Name), path: l.Dir})
	}
	dirs = append(dirs,
		overlayDir{role: "upper dir", path: upper},
		overlayDir{role: "work dir", path: work},
		overlayDir{role: "mount point", path: merged})
	for i := range dirs {
		d := &dirs[i]
		if !filepath.IsAbs(d.path) {
			return fmt.Errorf("%s %q: not an absolute path", d.role, d.path)
		}
		if strings.ContainsAny(d.path, ",:\\") {
			// The overlay option string separates with ',' and ':'.
			return fmt.Errorf("%s %s: overlay mount options cannot carry ',', ':' or '\\' in a path", d.role, d.path)
		}
		real, err := realPath(d.path)
		if err != nil {
			return fmt.Errorf("%s %s: %w", d.role, d.path, err)
		}
		d.real = real
	}
	for i, a := range dirs {
		for _, b := range dirs[i+1:] {
			switch {
			case a.real == b.real:
				if strings.HasPrefix(a.role, "layer") && strings.HasPrefix(b.role, "layer") {
					return fmt.Errorf("%w: %s and %s are the same directory %s", ErrLayerTwice, a.role, b.role, a.real)
				}
				return fmt.Errorf("%w: %s and %s are the same directory %s; each needs its own", ErrDirsOverlap, a.role, b.role, a.real)
			case within(a.real, b.real):
				return overlapError(a, b)
			case within(b.real, a.real):
				return overlapError(b, a)
			}
		}
	}
	return nil
}

func overlapError(inner, outer overlayDir) error {
	return fmt.Errorf("%w: %s %s is inside %s %s; overlayfs refuses overlapping directories (ELOOP), give each its own",
		ErrDirsOverlap, inner.role, inner.path, outer.role, outer.path)
}

// within reports whether path p lies strictly inside dir.
func within(p, dir string) bool {
	return strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// realPath resolves the symlinks of p's longest existing prefix, so dirs
// that do not exist yet (a fresh upper dir) compare like those that do.
func realPath(p string) (string, error) {
	p = filepath.Clean(p)
	var rest []string
	for {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if !errors.Is(err, os.ErrNotExist) || p == "/" {
			return "", err
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = filepath.Dir(p)
	}
}
