package layers

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/onefs"
)

// Unpacked adds the image layer l: unpack fills root, a directory it must
// create, inside a temporary layer dir; the finished layer is renamed into
// place with RENAME_NOREPLACE. A failed or interrupted unpack (a corrupt
// tar, a full disk) leaves no layer behind, not even half of one.
func (s *Store) Unpacked(l Layer, unpack func(root string) error) error {
	if err := CheckName(l.Name); err != nil {
		return fmt.Errorf("unpack image layer: %w", err)
	}
	if l.Image == "" || l.DiffID == "" {
		return fmt.Errorf("unpack image layer %s: the image and the layer's diff ID are required", l.Name)
	}
	unlock, err := s.exclusive()
	if err != nil {
		return fmt.Errorf("unpack image layer %s: %w", l.Name, err)
	}
	defer unlock()
	final := filepath.Join(s.Dir, l.Name)
	if _, err := os.Lstat(final); err == nil {
		return fmt.Errorf("unpack image layer: %w: %q is taken (see `layers`)", ErrExists, l.Name)
	}
	tmp, err := os.MkdirTemp(s.Dir, ".new-"+l.Name+"-")
	if err != nil {
		return fmt.Errorf("unpack image layer %s: %w", l.Name, err)
	}
	defer onefs.RemoveAll(tmp) // a no-op once renamed
	if err := unpack(filepath.Join(tmp, "root")); err != nil {
		return fmt.Errorf("unpack image layer %s: %w", l.Name, err)
	}
	l.Builtin, l.Created, l.Locked, l.LockedBy = false, time.Now().UTC(), false, ""
	if err := writeMeta(tmp, l); err != nil {
		return fmt.Errorf("unpack image layer: %w", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("unpack image layer %s: renameat2(%s, %s, RENAME_NOREPLACE): %w", l.Name, tmp, final, err)
	}
	return nil
}

// ByDiffID returns the layer unpacked from the tar with digest diffID, so
// a layer two images share is unpacked once.
func (s *Store) ByDiffID(diffID string) (Layer, bool) {
	all, err := s.List()
	if err != nil {
		return Layer{}, false
	}
	for _, l := range all {
		if l.DiffID == diffID && l.Image != "" {
			return l, true
		}
	}
	return Layer{}, false
}

// RemoveImageLayer removes the image layer name once no box uses it
// (InUse); `image rm` calls it for layers no other image holds.
func (s *Store) RemoveImageLayer(name string) error {
	_, err := s.remove(name, func(name string) error {
		l, err := s.Get(name)
		if err != nil {
			return err
		}
		if l.Image == "" {
			return fmt.Errorf("%w: %q is not an image layer", ErrReadOnly, name)
		}
		return s.ImageLayerFree(name)
	})
	return err
}

// ImageLayerFree returns nil when no box can be using image layer name.
func (s *Store) ImageLayerFree(name string) error {
	l, err := s.Get(name)
	if err != nil {
		return err
	}
	if !l.Locked {
		return nil
	}
	if s.InUse == nil {
		return fmt.Errorf("%q: %w: box %q mounted it", name, ErrInUse, l.LockedBy)
	}
	if err := s.InUse(name); err != nil {
		return fmt.Errorf("%q: %w: it may still be mounted: %w", name, ErrInUse, err)
	}
	return nil
}
