package images

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"stepbox/primitives/infile"
	"stepbox/primitives/onefs"
	"stepbox/primitives/step"
)

// ErrNotImage is returned for a path that holds no image stepbox reads.
var ErrNotImage = errors.New("not an image archive or layout")

const loadAllowed = "give a `docker save` archive, an OCI layout directory (it holds oci-layout and index.json) or a tar of one"

// Load adds the images at p: a `docker save` archive (Docker's
// manifest.json, as Docker before and since 25.0 writes it), an OCI image
// layout directory, or a tar of one. An image is named by its tag in the
// archive (RepoTags, or the layout's ref.name annotation), or by as when
// the archive holds one image, as `docker tag` would name it.
func (s *Store) Load(p, as string, progress Progress) ([]Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("image load: %w", err)
	}
	if fi.IsDir() {
		// A copy of its own first, so that the layout is read as it was
		// checked: a symlink out of it, a FIFO or a device never reaches
		// ggcr's reads, nor a swap by whoever else can write it.
		dir, err := os.MkdirTemp(s.Dir, ".load-")
		if err != nil {
			return nil, fmt.Errorf("image load %s: %w", p, err)
		}
		defer onefs.RemoveAll(dir)
		if err := copyLayout(p, dir); err != nil {
			return nil, fmt.Errorf("image load %s: %w", p, err)
		}
		return s.loadLayout(dir, p, as, progress)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("image load %s: %w: it is a %s, not a file: %s", p, ErrNotImage, infile.Kind(fi.Mode()), loadAllowed)
	}
	names, err := tarNames(p)
	if err != nil {
		return nil, fmt.Errorf("image load %s: %w: reading it as a tar: %w", p, ErrNotImage, err)
	}
	switch {
	case names["manifest.json"]:
		return s.loadDockerArchive(p, as, progress)
	case names["oci-layout"] && names["index.json"]:
		dir, err := os.MkdirTemp(s.Dir, ".load-")
		if err != nil {
			return nil, fmt.Errorf("image load %s: %w", p, err)
		}
		defer onefs.RemoveAll(dir)
		if err := untarLayout(p, dir); err != nil {
			return nil, fmt.Errorf("image load %s: %w", p, err)
		}
		return s.loadLayout(dir, p, as, progress)
	case names["repositories"]:
		return nil, fmt.Errorf("image load %s: %w: it is a `docker save` archive from before Docker 1.10 (no manifest.json); save it again with a newer Docker", p, ErrNotImage)
	}
	return nil, fmt.Errorf("image load %s: %w: %s", p, ErrNotImage, loadAllowed)
}

// tarNames lists the top-level names of the tar at p.
func tarNames(p string) (map[string]bool, error) {
	f, err := infile.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if n, err := entryName(h.Name); err == nil {
			out[n] = true
		}
	}
}

func (s *Store) loadDockerArchive(p, as string, progress Progress) ([]Image, error) {
	opener := func() (io.ReadCloser, error) { return infile.Open(p) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("image load %s: manifest.json: %w", p, err)
	}
	if as != "" && len(m) > 1 {
		return nil, fmt.Errorf("image load %s NAME: the archive holds %d images, each named by its tag; NAME names the image of a one-image archive: leave it out", p, len(m))
	}
	var out []Image
	for i, d := range m {
		var tag *name.Tag
		imName := as
		if as != "" {
			r, err := name.ParseReference(as)
			if err != nil {
				return nil, fmt.Errorf("image load %s %s: NAME is no image reference (as alpine or example.com/app:v1): %w", p, as, err)
			}
			if imName, err = checkedName(r); err != nil {
				return nil, fmt.Errorf("image load %s %s: %w", p, as, err)
			}
		}
		if len(d.RepoTags) > 0 && as == "" {
			t, err := name.NewTag(d.RepoTags[0])
			if err != nil {
				return out, fmt.Errorf("image load %s: tag %q: %w", p, d.RepoTags[0], err)
			}
			if imName, err = checkedName(t); err != nil {
				return out, fmt.Errorf("image load %s: tag %q: %w", p, d.RepoTags[0], err)
			}
			tag = &t
		} else if len(m) > 1 {
			return out, fmt.Errorf("image load %s: image %d of %d has no tag, and the archive holds more than one", p, i+1, len(m))
		}
		if imName == "" {
			return out, fmt.Errorf("image load %s: the archive's image has no tag: name it, `image load %s NAME`", p, p)
		}
		img, err := tarball.Image(opener, tag)
		if err != nil {
			return out, fmt.Errorf("image load %s: %w", p, err)
		}
		im, err := s.add(img, imName, p, progress)
		if err != nil {
			return out, fmt.Errorf("image load %s: %w", p, err)
		}
		out = append(out, im)
	}
	return out, nil
}

func (s *Store) loadLayout(dir, source, as string, progress Progress) ([]Image, error) {
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return nil, fmt.Errorf("image load %s: %w: %s", source, ErrNotImage, loadAllowed)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("image load %s: %w", source, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("image load %s: index.json: %w", source, err)
	}
	var out []Image
	for _, d := range im.Manifests {
		imName, err := layoutName(d, as, len(im.Manifests))
		if err != nil {
			return out, fmt.Errorf("image load %s: %w", source, err)
		}
		var img v1.Image
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err == nil {
				img, err = fromIndex(child, HostPlatform())
			}
			if err != nil {
				return out, fmt.Errorf("image load %s: %s: %w", source, imName, err)
			}
		case d.MediaType.IsImage():
			if img, err = idx.Image(d.Digest); err != nil {
				return out, fmt.Errorf("image load %s: %s: %w", source, imName, err)
			}
			if err := checkPlatform(img, HostPlatform()); err != nil {
				return out, fmt.Errorf("image load %s: %s: %w", source, imName, err)
			}
		default:
			continue
		}
		got, err := s.add(img, imName, source, progress)
		if err != nil {
			return out, fmt.Errorf("image load %s: %w", source, err)
		}
		out = append(out, got)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("image load %s: the layout's index.json lists no image", source)
	}
	return out, nil
}

// layoutName is the name of a layout's image: its ref.name annotation
// (a full reference, or only a tag as the image-spec suggests), else as.
func layoutName(d v1.Descriptor, as string, count int) (string, error) {
	ann := d.Annotations[refAnnotation]
	if as != "" && count == 1 {
		ann = as
	}
	if ann == "" {
		return "", fmt.Errorf("image %s has no name (no %s annotation): name it, `image load PATH NAME`", d.Digest, refAnnotation)
	}
	if r, err := name.ParseReference(ann); err == nil {
		return checkedName(r)
	}
	if as != "" {
		if r, err := name.ParseReference(as + ":" + ann); err == nil {
			return checkedName(r)
		}
	}
	return "", fmt.Errorf("image %s is named %q, which is no reference: name it, `image load PATH NAME`", d.Digest, ann)
}

// copyLayout copies the OCI layout directory src into dir: only
// directories and regular files, never following a symlink, and a file
// only as large as it was when opened.
func copyLayout(src, dir string) error {
	from, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	defer from.Close()
	to, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer to.Close()
	return fs.WalkDir(from.FS(), ".", func(rel string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case rel == ".":
			return nil
		case d.IsDir():
			return to.Mkdir(rel, 0o700)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: an OCI layout holds only directories and files, and this is a %s", step.Escape(rel), infile.Kind(d.Type()))
		}
		r, err := from.OpenFile(rel, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		defer r.Close()
		fi, err := r.Stat()
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s: an OCI layout holds only directories and files, and this is a %s", step.Escape(rel), infile.Kind(fi.Mode()))
		}
		w, err := to.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, io.LimitReader(r, fi.Size()))
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// untarLayout unpacks a tar of an OCI layout into dir: only directories
// and regular files, with the same care about names as a layer.
func untarLayout(p, dir string) error {
	f, err := infile.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		rel, err := entryName(h.Name)
		if err != nil {
			return fmt.Errorf("tar entry %q: %w", h.Name, err)
		}
		if rel == "" {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(rel, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := root.MkdirAll(filepath.Dir(rel), 0o700); err != nil {
				return err
			}
			w, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", h.Name, err)
			}
			_, err = io.Copy(w, tr)
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("tar entry %q: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("tar entry %q: an OCI layout holds only directories and files, not type %q", h.Name, h.Typeflag)
		}
	}
}
