package images

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"stepbox/primitives/layers"
)

// Event is one report of progress while an image is added.
type Event struct {
	Image  string
	Index  int // of the layer, 0 = bottom
	Count  int // layers in the image
	Digest string
	State  State
	Done   int64 // bytes so far (fetch)
	Total  int64 // bytes in all (fetch)
	Layer  string
	Note   string // what else happened (devices skipped)
}

// State is where a layer is on its way into the store.
type State string

const (
	Fetching  State = "fetching"  // bytes are arriving; Done of Total
	Fetched   State = "fetched"   // the blob is in the layout, its digest checked
	Present   State = "present"   // the blob was in the layout already: not fetched again
	Unpacked  State = "unpacked"  // unpacked into Layer
	Shared    State = "shared"    // another image unpacked the same tar into Layer already
	Unpacking State = "unpacking" // being unpacked into Layer
)

// Progress receives events; nil ignores them.
type Progress func(Event)

func (p Progress) send(e Event) {
	if p != nil {
		p(e)
	}
}

// add stores img as imName: its blobs into the layout (each blob once),
// then each layer unpacked once into a layer of the layer store. On
// failure what this call added is removed again.
func (s *Store) add(img v1.Image, imName, source string, progress Progress) (im Image, err error) {
	unlock, err := s.exclusive()
	if err != nil {
		return Image{}, err
	}
	defer unlock()
	digest, err := img.Digest()
	if err != nil {
		return Image{}, fmt.Errorf("manifest of %s: %w", imName, err)
	}
	cf, err := configFile(img)
	if err != nil {
		return Image{}, fmt.Errorf("config of %s: %w", imName, err)
	}
	ls, err := img.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("layers of %s: %w", imName, err)
	}
	if len(cf.RootFS.DiffIDs) != len(ls) {
		return Image{}, fmt.Errorf("%s: the manifest lists %d layers, the config's rootfs.diff_ids %d", imName, len(ls), len(cf.RootFS.DiffIDs))
	}
	budget, err := newBudget(s.Layers.Dir)
	if err != nil {
		return Image{}, err
	}
	im = Image{Name: imName, Source: source, Digest: digest.String(), Platform: platformOf(cf), Created: time.Now().UTC(), Config: ConfigOf(cf)}
	if old, err := readRecord(s.recordPath(imName)); err == nil && old.Digest != im.Digest {
		im.Replaced = &old
	}
	// The blobs to fetch, as big as the manifest says, are counted before
	// any is: a manifest may give a layer 50 GB. As each arrives its bytes
	// are counted again, and each blob's are bound to its size.
	fetch, claim := budget.fetching(s.layoutDir())
	for i, l := range ls {
		if err := s.claimBlob(im.Name, i, l, claim); err != nil {
			return Image{}, err
		}
	}
	// The same bound, counted while each layer's digest is checked: an
	// image past it is refused before anything of it is unpacked.
	check := budget.checking()
	for i, l := range ls {
		err := s.fetchLayer(im.Name, i, len(ls), l, cf.RootFS.DiffIDs[i], fetch, check, progress)
		if err != nil {
			// The blobs this call fetched are in no index entry yet.
			return Image{}, errors.Join(err, s.removeUnreferenced())
		}
	}
	p := s.Layout()
	// The index as it was, put back if the image fails to unpack: the
	// name keeps the image it named, and the new image's blobs go.
	indexFile := filepath.Join(s.layoutDir(), "index.json")
	index, err := os.ReadFile(indexFile)
	indexInfo, serr := os.Stat(indexFile)
	if err = errors.Join(err, serr); err != nil {
		return Image{}, errors.Join(fmt.Errorf("read the OCI layout's index: %w", err), s.removeUnreferenced())
	}
	var made []string
	defer func() {
		if err != nil {
			for _, n := range made {
				s.Layers.RemoveImageLayer(n)
			}
			if werr := writeAtomic(indexFile, index, indexInfo.Mode().Perm()); werr == nil {
				s.removeUnreferenced()
			}
		}
	}()
	ann := layout.WithAnnotations(map[string]string{refAnnotation: imName})
	if err := p.ReplaceImage(img, match.Annotation(refAnnotation, imName), ann); err != nil {
		return Image{}, fmt.Errorf("write %s into the OCI layout %s: %w", imName, s.layoutDir(), err)
	}
	local, err := p.Image(digest)
	if err != nil {
		return Image{}, fmt.Errorf("read %s back from %s: %w", imName, s.layoutDir(), err)
	}
	lls, err := local.Layers()
	if err != nil {
		return Image{}, fmt.Errorf("layers of %s: %w", imName, err)
	}
	history := layerHistory(cf, len(lls))
	for i, l := range lls {
		il, fresh, err := s.unpackLayer(im.Name, i, len(lls), l, history[i], budget, progress)
		if err != nil {
			return Image{}, err
		}
		if fresh {
			made = append(made, il.Name)
		}
		im.Layers = append(im.Layers, il)
	}
	if err := s.writeRecord(im); err != nil {
		return Image{}, fmt.Errorf("record image %s: %w", imName, err)
	}
	if im.Replaced != nil {
		// Not err: the deferred cleanup would remove the new layers.
		var cerr error
		im.Collected, im.Kept, cerr = s.collect()
		if cerr != nil {
			im.CollectErr = fmt.Errorf("collecting the layers of the image %s named before: %w", imName, cerr)
		}
	}
	return im, nil
}

// layerHistory is the command that made each layer: the config's
// history, without the entries that made no layer (ENV, CMD…).
func layerHistory(cf *v1.ConfigFile, n int) []string {
	out := make([]string, n)
	i := 0
	for _, h := range cf.History {
		if h.EmptyLayer {
			continue
		}
		if i < n {
			out[i] = h.CreatedBy
		}
		i++
	}
	return out
}

func platformOf(cf *v1.ConfigFile) string {
	p := cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		p += "/" + cf.Variant
	}
	return p
}

// blobOf is the digest and size of layer i's compressed blob, and
// whether the layout has it already.
func (s *Store) blobOf(imName string, i int, l v1.Layer) (h v1.Hash, size int64, present bool, err error) {
	h, err = l.Digest()
	if err != nil {
		return h, 0, false, fmt.Errorf("layer %d of %s: %w", i, imName, err)
	}
	size, err = l.Size()
	if err != nil {
		return h, 0, false, fmt.Errorf("layer %d (%s) of %s: %w", i, h, imName, err)
	}
	if size < 0 {
		return h, 0, false, fmt.Errorf("layer %d (%s) of %s: the manifest gives it a size of %d bytes", i, h, imName, size)
	}
	fi, err := os.Stat(filepath.Join(s.layoutDir(), "blobs", h.Algorithm, h.Hex))
	return h, size, err == nil && fi.Size() == size, nil
}

// claimBlob counts the size the manifest gives layer i's blob against
// b, unless the layout has the blob already.
func (s *Store) claimBlob(imName string, i int, l v1.Layer, b *budget) error {
	h, size, present, err := s.blobOf(imName, i, l)
	if err != nil || present {
		return err
	}
	if err := b.take(size); err != nil {
		return fmt.Errorf("layer %d (%s) of %s, %.1f MB as the manifest says: %w", i, h, imName, float64(size)/(1<<20), err)
	}
	return nil
}

// fetchLayer copies the layer's compressed blob into the layout, unless
// a blob of that digest and size is there already, its bytes counted
// against fb, and checks that its uncompressed content is the config's
// diffID, as `docker load` does: a layer swapped in an archive is
// refused before anything is unpacked, and so is one past b.
func (s *Store) fetchLayer(imName string, i, n int, l v1.Layer, diffID v1.Hash, fb, b *budget, progress Progress) error {
	h, size, present, err := s.blobOf(imName, i, l)
	if err != nil {
		return err
	}
	ev := Event{Image: imName, Index: i, Count: n, Digest: h.String(), Total: size}
	final := filepath.Join(s.layoutDir(), "blobs", h.Algorithm, h.Hex)
	if present {
		ev.State, ev.Done = Present, size
		progress.send(ev)
		return s.checkDiffID(imName, i, l, final, diffID, b)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetch layer %d (%s) of %s: %w", i, h, imName, err)
	}
	defer rc.Close()
	if err := s.writeBlob(h, size, fb.reader(rc), func(done int64) {
		ev.State, ev.Done = Fetching, done
		progress.send(ev)
	}); err != nil {
		return fmt.Errorf("fetch layer %d (%s) of %s: %w", i, h, imName, err)
	}
	if err := s.checkDiffID(imName, i, l, final, diffID, b); err != nil {
		return err
	}
	ev.State, ev.Done = Fetched, size
	progress.send(ev)
	return nil
}

// checkDiffID reads the blob at file uncompressed and compares its
// sha256 with want, the config's rootfs.diff_ids entry for layer i. A
// layer the store has not unpacked yet counts against b.
func (s *Store) checkDiffID(imName string, i int, l v1.Layer, file string, want v1.Hash, b *budget) error {
	var opts []tarball.LayerOption
	if mt, err := l.MediaType(); err == nil {
		opts = append(opts, tarball.WithMediaType(mt))
	}
	fl, err := tarball.LayerFromFile(file, opts...)
	if err != nil {
		return fmt.Errorf("layer %d of %s: read it uncompressed: %w", i, imName, err)
	}
	rc, err := fl.Uncompressed()
	if err != nil {
		return fmt.Errorf("layer %d of %s: read it uncompressed: %w", i, imName, err)
	}
	defer rc.Close()
	var r io.Reader = rc
	_, shared := s.Layers.ByDiffID(want.String())
	if !shared {
		r = b.reader(rc)
	}
	sum := sha256.New()
	r = io.TeeReader(r, sum)
	if !shared {
		// Its entries too, each an inode once unpacked.
		err = b.countEntries(r)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, r)
	}
	if errors.Is(err, ErrImageTooLarge) {
		return fmt.Errorf("layer %d of %s: %w", i, imName, err)
	} else if err != nil {
		return fmt.Errorf("layer %d of %s: read it uncompressed: %w", i, imName, err)
	}
	got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum.Sum(nil))}
	if got != want {
		return fmt.Errorf("layer %d of %s: %w: its content is %s uncompressed, the image's config (rootfs.diff_ids) says %s", i, imName, ErrLayerMismatch, got, want)
	}
	return nil
}

// ErrLayerMismatch is returned for a layer whose content is not what the
// image's config says it is.
var ErrLayerMismatch = errors.New("layer does not match the image's config")

// writeBlob streams rc into the layout's blob h: into a hidden temporary
// file first, its sha256 and size checked, then renamed. A download cut
// short leaves nothing a later pull would take for the blob, and one
// longer than size stops at the first byte past it.
func (s *Store) writeBlob(h v1.Hash, size int64, rc io.Reader, report func(int64)) error {
	if h.Algorithm != "sha256" {
		return fmt.Errorf("digest algorithm %q: only sha256 is supported", h.Algorithm)
	}
	dir := filepath.Join(s.layoutDir(), "blobs", h.Algorithm)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".part-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	sum := sha256.New()
	w := &countWriter{report: report}
	n, err := io.Copy(io.MultiWriter(tmp, sum, w), io.LimitReader(rc, size+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
		return fmt.Errorf("after %d of %d bytes: %w", n, size, err)
	case n > size:
		return fmt.Errorf("it sends more than the %d bytes the manifest says: refused", size)
	case n != size:
		return fmt.Errorf("got %d bytes, the manifest says %d", n, size)
	case hex.EncodeToString(sum.Sum(nil)) != h.Hex:
		return fmt.Errorf("content's digest is sha256:%x, not %s", sum.Sum(nil), h)
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, h.Hex))
}

type countWriter struct {
	n, last int64
	report  func(int64)
}

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if c.report != nil && c.n-c.last >= 256<<10 {
		c.last = c.n
		c.report(c.n)
	}
	return len(p), nil
}

// unpackLayer makes the stepbox layer of image layer l, or finds the one
// another image made of the same tar. fresh says it made one.
// What it unpacks is counted against b.
func (s *Store) unpackLayer(imName string, i, n int, l v1.Layer, createdBy string, b *budget, progress Progress) (Layer, bool, error) {
	d, err := l.Digest()
	if err != nil {
		return Layer{}, false, err
	}
	diff, err := l.DiffID()
	if err != nil {
		return Layer{}, false, fmt.Errorf("layer %d (%s) of %s: %w", i, d, imName, err)
	}
	size, _ := l.Size()
	il := Layer{Digest: d.String(), DiffID: diff.String(), Size: size, CreatedBy: createdBy}
	ev := Event{Image: imName, Index: i, Count: n, Digest: d.String()}
	if have, ok := s.Layers.ByDiffID(diff.String()); ok {
		il.Name = have.Name
		ev.State, ev.Layer = Shared, have.Name
		progress.send(ev)
		return il, false, nil
	}
	il.Name = fmt.Sprintf("%s.%d", layerBase(imName), i)
	if _, err := s.Layers.Get(il.Name); err == nil {
		il.Name = fmt.Sprintf("%s.%d-%s", layerBase(imName), i, diff.Hex[:8])
	}
	ev.State, ev.Layer = Unpacking, il.Name
	progress.send(ev)
	var rep UnpackReport
	meta := layers.Layer{Name: il.Name, Description: fmt.Sprintf("layer %d of image %s", i, imName), Image: imName, DiffID: diff.String(), CreatedBy: createdBy}
	err = s.Layers.Unpacked(meta, func(root string) error {
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		defer rc.Close()
		rep, err = unpack(b.reader(rc), root, b.takeEntry)
		return err
	})
	if err != nil {
		return Layer{}, false, fmt.Errorf("layer %d (%s) of %s: %w", i, d, imName, err)
	}
	ev.State = Unpacked
	ev.Note = rep.note()
	progress.send(ev)
	return il, true, nil
}
