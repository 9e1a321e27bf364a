package images

import (
	"archive/tar"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// A `docker save` archive whose layer 2 was swapped for another valid
// tar is refused, as `docker load` refuses it, and leaves nothing.
func TestLoadRefusesALayerThatIsNotTheConfigsDiffID(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	cf, _ := img.ConfigFile()
	ls, _ := img.Layers()
	other := tarLayer(t, layerTar(t, entry{name: "evil", typ: tar.TypeReg, body: "not the app\n"}))
	swapped, err := mutate.AppendLayers(empty.Image, ls[0], ls[1], other)
	if err != nil {
		t.Fatal(err)
	}
	tampered, err := mutate.ConfigFile(swapped, cf)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "x.tar")
	tag, _ := name.NewTag("example.com/saved/app:v2")
	if err := tarball.WriteToFile(archive, tag, tampered); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	_, err = s.Load(archive, "", nil)
	gotDiff, _ := other.DiffID()
	if !errors.Is(err, ErrLayerMismatch) || !strings.Contains(err.Error(), "layer 2") ||
		!strings.Contains(err.Error(), gotDiff.String()) || !strings.Contains(err.Error(), cf.RootFS.DiffIDs[2].String()) {
		t.Fatalf("load of a tampered archive: %v", err)
	}
	if list, _ := s.Layers.List(); len(list) != 0 {
		t.Errorf("layers left: %+v", list)
	}
	if ims, _ := s.List(); len(ims) != 0 {
		t.Errorf("images left: %+v", ims)
	}
	if n := dirNames(t, filepath.Join(s.Dir, "oci", "blobs", "sha256"), ""); len(n) != 0 {
		t.Errorf("blobs left: %v", n)
	}
}

// Loading another image under a name that exists says which image the
// name named before.
func TestLoadUnderATakenNameReportsTheImageItReplaced(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tag, _ := name.NewTag("example.com/saved/app:v2")
	first := filepath.Join(dir, "a.tar")
	img := testImage(t)
	if err := tarball.WriteToFile(first, tag, img); err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Env = append(cf.Config.Env, "V=2")
	img2, _ := mutate.ConfigFile(img, cf)
	second := filepath.Join(dir, "b.tar")
	if err := tarball.WriteToFile(second, tag, img2); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	a, err := s.Load(first, "", nil)
	if err != nil || a[0].Replaced != nil {
		t.Fatalf("first load: %v %+v", err, a)
	}
	b, err := s.Load(second, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b[0].Replaced == nil || b[0].Replaced.Digest != a[0].Digest || b[0].Digest == a[0].Digest {
		t.Errorf("second load under the same name: replaced %+v, want %s", b[0].Replaced, a[0].Digest)
	}
}

// A name loaded again with other layers moves to the new image; the old
// image's layers, which no image names any more, are removed, unless a
// box stands on them: those go at the next load, pull or rm once free.
func TestLoadUnderATakenNameCollectsTheOldImagesLayers(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tag, _ := name.NewTag("example.com/saved/app:v2")
	first := filepath.Join(dir, "a.tar")
	old := testImage(t)
	if err := tarball.WriteToFile(first, tag, old); err != nil {
		t.Fatal(err)
	}
	lone := layerTar(t, entry{name: "only", typ: byte(tar.TypeReg), body: "only here\n"})
	other, err := mutate.AppendLayers(empty.Image, tarLayer(t, lone))
	if err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(dir, "b.tar")
	if err := tarball.WriteToFile(second, tag, other); err != nil {
		t.Fatal(err)
	}
	s := openStore(t)
	a, err := s.Load(first, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A box stands on the first image's bottom layer.
	standing := a[0].Layers[0].Name
	if err := s.Layers.Lock(standing, "web"); err != nil {
		t.Fatal(err)
	}
	b, err := s.Load(second, "", nil)
	if err != nil || b[0].CollectErr != nil {
		t.Fatalf("second load: %v %v", err, b[0].CollectErr)
	}
	var want []string
	for _, l := range a[0].Layers[1:] {
		want = append(want, l.Name)
	}
	if !slices.Equal(b[0].Collected, want) || !slices.Equal(b[0].Kept, []string{standing}) {
		t.Errorf("collected %v and kept %v; want %v collected and %s kept (a box stands on it)", b[0].Collected, b[0].Kept, want, standing)
	}
	for _, n := range want {
		if _, err := os.Stat(s.Layers.Root(n)); !os.IsNotExist(err) {
			t.Errorf("layer %s of the replaced image is still on disk: %v", n, err)
		}
	}
	if _, err := os.Stat(s.Layers.Root(standing)); err != nil {
		t.Errorf("layer %s, which a box stands on, was removed: %v", standing, err)
	}
	// Every blob left in the layout belongs to the image the name has now.
	blobs, _ := os.ReadDir(filepath.Join(s.layoutDir(), "blobs", "sha256"))
	if len(blobs) != 3 { // manifest, config, one layer
		t.Errorf("the layout keeps %d blobs, want the new image's 3", len(blobs))
	}
}

// An OCI layout directory is read as it holds only directories and files:
// a blob that is a symlink (to /dev/zero, or out of the layout) or a FIFO
// is refused by name, before anything reads it; an archive path that is
// a FIFO is refused without opening it.
func TestLoadRefusesALayoutThatLinksOutOfItself(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	s := openStore(t)
	m, _ := img.Manifest()
	for _, tc := range []struct {
		plant func(blob string) error
		want  string
	}{
		{func(blob string) error { return os.Symlink("/dev/zero", blob) }, "this is a symlink"},
		{func(blob string) error { return os.Symlink("../../../../etc/passwd", blob) }, "this is a symlink"},
		{func(blob string) error { return unix.Mkfifo(blob, 0o600) }, "this is a FIFO"},
	} {
		lay := filepath.Join(t.TempDir(), "layout")
		p, err := layout.Write(lay, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refAnnotation: "example.com/evil:1"})); err != nil {
			t.Fatal(err)
		}
		blob := filepath.Join(lay, "blobs", "sha256", m.Layers[0].Digest.Hex)
		os.Remove(blob)
		if err := tc.plant(blob); err != nil {
			t.Fatal(err)
		}
		_, err = s.Load(lay, "", nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), m.Layers[0].Digest.Hex) {
			t.Errorf("load of a layout with a planted blob: %v, want %q naming the blob", err, tc.want)
		}
	}
	fifo := filepath.Join(t.TempDir(), "image.tar")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(fifo, "", nil); !errors.Is(err, ErrNotImage) || !strings.Contains(err.Error(), "FIFO") {
		t.Errorf("load of a FIFO: %v", err)
	}
	if ims, err := s.List(); err != nil || len(ims) != 0 {
		t.Errorf("a refused load left images: %+v", ims)
	}
}

// A layout's file that is not a directory or a file is refused by its
// name escaped: the archive chose it, and a newline in it would print a
// line of the archive's own under stepbox's error.
func TestLoadNamesALayoutsFileEscaped(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	s := openStore(t)
	lay := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refAnnotation: "example.com/evil:1"})); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(lay, "a\n✓ image loaded\\x1b")); err != nil {
		t.Fatal(err)
	}
	_, err = s.Load(lay, "", nil)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), `a\n✓ image loaded\\x1b: an OCI layout holds only directories and files`) {
		t.Errorf("load of a layout holding a symlink named with a newline: %q, want its name escaped", err)
	}
}

// A repository whose path Docker's reference grammar refuses ("..", ".",
// ".lock", "a..b") is refused by name, as a tag in the archive and as
// the NAME given (ut28 F7); a name it accepts loads.
func TestLoadRefusesARepositoryDockerWouldRefuse(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	s := openStore(t)
	for _, repo := range []string{"ut28/..", "ut28/.", "ut28/.lock", "a..b", "x/-y"} {
		tag, err := name.NewTag(repo + ":v1")
		if err != nil {
			continue // go-containerregistry refuses it already
		}
		file := filepath.Join(dir, "t.tar")
		if err := tarball.WriteToFile(file, tag, testImage(t)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Load(file, "", nil); err == nil || !strings.Contains(err.Error(), "no name Docker accepts") {
			t.Errorf("tag %s: want a refusal naming the component, got %v", repo, err)
		}
		if _, err := s.Load(file, repo, nil); err == nil || !strings.Contains(err.Error(), "no name Docker accepts") {
			t.Errorf("NAME %s: want a refusal naming the component, got %v", repo, err)
		}
	}
	ok, _ := name.NewTag("ut28/a-b.c__d:v1")
	file := filepath.Join(dir, "ok.tar")
	if err := tarball.WriteToFile(file, ok, testImage(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(file, "", nil); err != nil {
		t.Errorf("a name Docker accepts: %v", err)
	}
}
