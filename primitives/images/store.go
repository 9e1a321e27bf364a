// Package images keeps OCI images: their blobs in one OCI image layout
// under the state dir (<lib>/images/oci), and each image layer unpacked
// once into a read-only layer of the layer store, which `mount overlay`
// stacks like any other. Nothing here mounts anything or prints.
package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"golang.org/x/sys/unix"

	"stepbox/primitives/layers"
)

// ErrNoImage is returned for a name no image in the store has.
var ErrNoImage = errors.New("no such image")

// refAnnotation names an image in the layout's index.json (image-spec
// annotations.md), as skopeo and umoci do.
const refAnnotation = "org.opencontainers.image.ref.name"

// Image is what the store records about one image.
type Image struct {
	Name     string    `json:"name"`     // what commands take: "alpine:latest", "localhost:5000/app:v1"
	Source   string    `json:"source"`   // where it came from: the full reference, or the file loaded
	Digest   string    `json:"digest"`   // of its manifest
	Platform string    `json:"platform"` // os/arch[/variant]
	Created  time.Time `json:"created"`
	Config   Config    `json:"config"`
	Layers   []Layer   `json:"layers"` // bottom first
	// Replaced is the image this name named before the pull or load
	// that returned this one, if another; not recorded.
	Replaced *Image `json:"-"`
	// Collected are the replaced image's layers that no image used any
	// more and were removed; Kept, those a box still stands on, removed
	// by a later `image load`, `image pull` or `image rm` once free.
	Collected, Kept []string `json:"-"`
	CollectErr      error    `json:"-"`
}

// Config is the part of the image's config that decides how its
// commands run.
type Config struct {
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	User       string   `json:"user,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
}

// Layer is one layer of an image.
type Layer struct {
	Name      string `json:"name"`    // the stepbox layer it is unpacked in
	Digest    string `json:"digest"`  // of the compressed blob
	DiffID    string `json:"diff_id"` // of the uncompressed tar
	Size      int64  `json:"size"`    // compressed bytes
	CreatedBy string `json:"created_by,omitempty"`
}

// Store is the image store: an OCI layout and one record per image.
type Store struct {
	Dir    string
	Layers *layers.Store
}

// Open returns the image store at dir (0700), its layers kept in ls.
func Open(dir string, ls *layers.Store) (*Store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "refs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("image store: mkdir %s: %w", d, err)
		}
	}
	s := &Store{Dir: dir, Layers: ls}
	if _, err := os.Stat(filepath.Join(s.layoutDir(), "index.json")); errors.Is(err, os.ErrNotExist) {
		if _, err := layout.Write(s.layoutDir(), empty.Index); err != nil {
			return nil, fmt.Errorf("image store: write OCI layout %s: %w", s.layoutDir(), err)
		}
	}
	return s, s.sweep()
}

// sweep removes the partial blobs a session killed in the middle of a
// pull left. Under the store's lock no pull is under way.
func (s *Store) sweep() error {
	unlock, err := s.exclusive()
	if err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	defer unlock()
	dir := filepath.Join(s.layoutDir(), "blobs", "sha256")
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil // no blob yet
	}
	var errs []error
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".part-") {
			errs = append(errs, os.Remove(filepath.Join(dir, de.Name())))
		}
	}
	return errors.Join(errs...)
}

func (s *Store) layoutDir() string { return filepath.Join(s.Dir, "oci") }

// Layout is the store's OCI image layout: what `skopeo`, `umoci` or
// `crane` read as oci:DIR.
func (s *Store) Layout() layout.Path { return layout.Path(s.layoutDir()) }

func (s *Store) recordPath(n string) string {
	h := sha256.Sum256([]byte(n))
	return filepath.Join(s.Dir, "refs", hex.EncodeToString(h[:8])+".json")
}

// ShortName is how stepbox names the image ref: Docker Hub's registry
// and "library/" left out, as `docker images` shows them.
// pathComponent is one component of a repository's path as Docker's
// reference grammar allows it: lower-case letters and digits, joined by
// one '.', one or two '_' or any number of '-'. go-containerregistry
// accepts more ("..", ".lock"), which no registry or Docker would.
var pathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// checkedName is ShortName of a reference whose repository Docker's
// grammar accepts, or an error naming the component it refuses.
func checkedName(ref name.Reference) (string, error) {
	repo := ref.Context().RepositoryStr()
	for _, c := range strings.Split(repo, "/") {
		if !pathComponent.MatchString(c) {
			return "", fmt.Errorf("repository %q: %q is no name Docker accepts (lower-case letters and digits, joined by '.', '_', '__' or '-')", repo, c)
		}
	}
	return ShortName(ref), nil
}

func ShortName(ref name.Reference) string {
	repo := ref.Context().RepositoryStr()
	reg := ref.Context().RegistryStr()
	n := repo
	if reg != name.DefaultRegistry {
		n = reg + "/" + repo
	} else {
		n = strings.TrimPrefix(repo, "library/")
	}
	switch r := ref.(type) {
	case name.Tag:
		return n + ":" + r.TagStr()
	case name.Digest:
		return n + "@" + r.DigestStr()
	}
	return n
}

// List returns every image, by name.
func (s *Store) List() ([]Image, error) {
	des, err := os.ReadDir(filepath.Join(s.Dir, "refs"))
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []Image
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".json") {
			continue
		}
		im, err := readRecord(filepath.Join(s.Dir, "refs", de.Name()))
		if err == nil {
			out = append(out, im)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func readRecord(file string) (Image, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return Image{}, err
	}
	var im Image
	if err := json.Unmarshal(b, &im); err != nil {
		return Image{}, fmt.Errorf("parse %s: %w", file, err)
	}
	return im, nil
}

// Get returns the image called n: its short name ("alpine:latest"), the
// name without ":latest", or any reference that names the same image
// ("docker.io/library/alpine").
func (s *Store) Get(n string) (Image, error) {
	for _, cand := range candidates(n) {
		if im, err := readRecord(s.recordPath(cand)); err == nil && im.Name == cand {
			return im, nil
		}
	}
	all, _ := s.List()
	if len(all) == 0 {
		return Image{}, fmt.Errorf("%w %q: the store has none yet; `image pull REF` or `image load PATH` adds one", ErrNoImage, n)
	}
	names := make([]string, len(all))
	for i, im := range all {
		names[i] = im.Name
	}
	return Image{}, fmt.Errorf("%w %q: images are %s", ErrNoImage, n, strings.Join(names, ", "))
}

// Has reports whether n names an image in the store.
func (s *Store) Has(n string) bool {
	_, err := s.Get(n)
	return err == nil
}

func candidates(n string) []string {
	out := []string{n}
	if ref, err := name.ParseReference(n); err == nil {
		out = append(out, ShortName(ref))
	}
	return out
}

// writeRecord replaces the record of im atomically.
func (s *Store) writeRecord(im Image) error {
	b, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(s.recordPath(im.Name), append(b, '\n'), 0o600)
}

// writeAtomic replaces file with data, mode perm: written beside it,
// then renamed.
func writeAtomic(file string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".rec-")
	if err != nil {
		return err
	}
	err = tmp.Chmod(perm)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// exclusive serialises changes to the image store between sessions.
func (s *Store) exclusive() (func(), error) {
	p := filepath.Join(s.Dir, ".lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock(%s, LOCK_EX): %w", p, err)
	}
	return func() { f.Close() }, nil
}

// Remove deletes image n: its record, its entry in the layout with the
// blobs no other image uses, and its layers no other image uses. A layer
// a box may still have mounted stops it before anything changes.
func (s *Store) Remove(n string) (Image, []string, error) {
	unlock, err := s.exclusive()
	if err != nil {
		return Image{}, nil, fmt.Errorf("image rm %s: %w", n, err)
	}
	defer unlock()
	im, err := s.Get(n)
	if err != nil {
		return Image{}, nil, fmt.Errorf("image rm: %w", err)
	}
	all, err := s.List()
	if err != nil {
		return im, nil, fmt.Errorf("image rm: %w", err)
	}
	shared := map[string]bool{}
	for _, o := range all {
		if o.Name == im.Name {
			continue
		}
		for _, l := range o.Layers {
			shared[l.Name] = true
		}
	}
	var drop []string
	for _, l := range im.Layers {
		if shared[l.Name] {
			continue
		}
		if err := s.Layers.ImageLayerFree(l.Name); err != nil && !errors.Is(err, layers.ErrNoLayer) {
			return im, nil, fmt.Errorf("image rm %s: layer %s: %w", im.Name, l.Name, err)
		}
		drop = append(drop, l.Name)
	}
	if err := os.Remove(s.recordPath(im.Name)); err != nil {
		return im, nil, fmt.Errorf("image rm %s: %w", im.Name, err)
	}
	var errs []error
	if err := s.Layout().RemoveDescriptors(match.Annotation(refAnnotation, im.Name)); err != nil {
		errs = append(errs, fmt.Errorf("remove %s from %s: %w", im.Name, s.layoutDir(), err))
	}
	if err := s.removeUnreferenced(); err != nil {
		errs = append(errs, fmt.Errorf("remove unused blobs of %s: %w", s.layoutDir(), err))
	}
	var removed []string
	for _, l := range drop {
		if err := s.Layers.RemoveImageLayer(l); err != nil && !errors.Is(err, layers.ErrNoLayer) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, l)
	}
	// Layers of images this name or another named before, kept then
	// because a box stood on them, go once free.
	more, _, err := s.collect()
	errs = append(errs, err)
	return im, append(removed, more...), errors.Join(errs...)
}

// collect removes the image layers no image record names any more (a
// name that moved to another image leaves its old layers so), and the
// blobs no index entry reaches. A layer a box may still stand on is kept
// and returned in kept.
func (s *Store) collect() (removed, kept []string, err error) {
	all, err := s.List()
	if err != nil {
		return nil, nil, err
	}
	named := map[string]bool{}
	for _, im := range all {
		for _, l := range im.Layers {
			named[l.Name] = true
		}
	}
	ls, err := s.Layers.List()
	if err != nil {
		return nil, nil, err
	}
	var errs []error
	for _, l := range ls {
		if l.Image == "" || named[l.Name] {
			continue
		}
		if err := s.Layers.ImageLayerFree(l.Name); err != nil {
			if errors.Is(err, layers.ErrInUse) {
				kept = append(kept, l.Name)
			} else if !errors.Is(err, layers.ErrNoLayer) {
				errs = append(errs, err)
			}
			continue
		}
		if err := s.Layers.RemoveImageLayer(l.Name); err != nil && !errors.Is(err, layers.ErrNoLayer) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, l.Name)
	}
	if err := s.removeUnreferenced(); err != nil {
		errs = append(errs, fmt.Errorf("remove unused blobs of %s: %w", s.layoutDir(), err))
	}
	return removed, kept, errors.Join(errs...)
}

// removeUnreferenced deletes the blobs GarbageCollect found unused.
func (s *Store) removeUnreferenced() error {
	unused, err := s.Layout().GarbageCollect()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range unused {
		errs = append(errs, s.Layout().RemoveBlob(h))
	}
	return errors.Join(errs...)
}

// layerBase is the start of the names of an image's layers: the last
// part of its repository, and its tag unless "latest".
func layerBase(imageName string) string {
	n := imageName
	if i := strings.LastIndex(n, "/"); i >= 0 {
		n = n[i+1:]
	}
	n = strings.TrimSuffix(n, ":latest")
	if at := strings.Index(n, "@"); at >= 0 {
		n = n[:at]
	}
	n = badLayerChars.ReplaceAllString(n, "-")
	n = strings.TrimLeft(n, "-_.")
	if n == "" {
		n = "image"
	}
	if len(n) > 20 {
		n = n[:20]
	}
	return n
}

var badLayerChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)

// ConfigOf keeps what decides how the image's commands run.
func ConfigOf(cf *v1.ConfigFile) Config {
	c := cf.Config
	return Config{Env: c.Env, WorkingDir: c.WorkingDir, User: c.User, Entrypoint: c.Entrypoint, Cmd: c.Cmd}
}
