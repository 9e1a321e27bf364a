package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// An image whose layers unpack to more than $STEPBOX_IMAGE_MB (3 MB of
// zeros, a few KB of gzip) is refused by `image load` and `image pull`
// while its layers' digests are checked, before any of it is unpacked,
// and the store is left as it was: the image the name
// named before stays, and no partial layer, record, index entry or blob
// of the refused one is left (ut29 F8: 19 MB unpacked to 4.1 GB).
func TestAnImageLargerThanTheBoundIsRefusedAndLeavesTheStoreAsItWas(t *testing.T) {
	needRoot(t)
	t.Setenv(ImageSizeEnv, "1")
	s := openStore(t)
	dir := t.TempDir()
	r := byte(tar.TypeReg)
	write := func(file, ref string, ls ...[]byte) string {
		img := empty.Image
		for _, l := range ls {
			var err error
			if img, err = mutate.AppendLayers(img, tarLayer(t, l)); err != nil {
				t.Fatal(err)
			}
		}
		tag, _ := name.NewTag(ref)
		if err := tarball.WriteToFile(filepath.Join(dir, file), tag, img); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, file)
	}
	if _, err := s.Load(write("small.tar", "big:v1", layerTar(t, entry{name: "small", typ: r, body: "fits\n"})), "", nil); err != nil {
		t.Fatal(err)
	}
	old, _ := s.Get("big:v1")
	store := filepath.Dir(s.Dir)
	before := flat(t, store)

	base := layerTar(t, entry{name: "base", typ: r, body: "a layer of its own, unpacked before the big one\n"})
	big := layerTar(t, entry{name: "zeros", typ: r, body: strings.Repeat("\x00", 3<<20)})
	_, err := s.Load(write("big.tar", "big:v1", base, big), "", nil)
	if !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("load of an image of 3 MB with a bound of 1 MB: %v", err)
	}
	for _, want := range []string{"image load", "layer 1", "of big:v1", "more than 1 MB", "$" + ImageSizeEnv, "refused before any of it was unpacked"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the load's error lacks %q: %v", want, err)
		}
	}
	if after := flat(t, store); !slices.Equal(before, after) {
		t.Errorf("the store changed:\nbefore %q\nafter  %q", before, after)
	}
	if im, err := s.Get("big:v1"); err != nil || im.Digest != old.Digest {
		t.Errorf("big:v1 after the refused load: %v %v, want the image it named, %s", im.Digest, err, old.Digest)
	}

	img, _ := tarball.ImageFromPath(filepath.Join(dir, "big.tar"), nil)
	host := registryWith(t, func(host string) { pushImage(t, host+"/big:v1", img) })
	_, err = s.Pull(context.Background(), host+"/big:v1", PullOptions{}, nil)
	if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "image pull") || !strings.Contains(err.Error(), "layer 1") {
		t.Errorf("pull of an image of 3 MB with a bound of 1 MB: %v", err)
	}
	if after := flat(t, store); !slices.Equal(before, after) {
		t.Errorf("the store changed after the pull:\nbefore %q\nafter  %q", before, after)
	}

	t.Setenv(ImageSizeEnv, "4")
	if _, err := s.Load(filepath.Join(dir, "big.tar"), "", nil); err != nil {
		t.Errorf("the same image with a bound of 4 MB: %v", err)
	}
}

// Unpacking stops at the bound, should a layer unpack to more than its
// digest's check counted, and says what it had unpacked.
func TestUnpackStopsAtTheBound(t *testing.T) {
	b := &budget{bound: 1 << 20, why: "test", dir: t.TempDir(), space: func(string) (int64, int64, error) { return 1 << 40, 0, nil }}
	tr := layerTar(t, entry{name: "data", typ: tar.TypeReg, body: strings.Repeat("x", 3<<20)})
	_, err := Unpack(b.reader(bytes.NewReader(tr)), filepath.Join(b.dir, "root"))
	if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "more than 1 MB uncompressed") || !regexp.MustCompile(`stopped after 0\.\d MB, and what it unpacked is removed`).MatchString(err.Error()) {
		t.Fatalf("unpack of 3 MB with a bound of 1 MB: %v", err)
	}
	if b.used > 1<<20 {
		t.Errorf("unpacked %d bytes, past the bound", b.used)
	}
}

// Unpacking stops before the layer store's filesystem has less than its
// reserve free, whatever the bound.
func TestUnpackStopsBeforeTheStoresFilesystemFillsUp(t *testing.T) {
	b := &budget{bound: 1 << 40, why: "test", dir: "/the/store"}
	// 3 MB free before the unpack, 2 MB of them kept.
	b.space = func(string) (int64, int64, error) { return 3<<20 - b.used, 2 << 20, nil }
	tr := layerTar(t, entry{name: "data", typ: tar.TypeReg, body: strings.Repeat("x", 4<<20)})
	_, err := Unpack(b.reader(bytes.NewReader(tr)), filepath.Join(t.TempDir(), "root"))
	if !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), "/the/store has") || !strings.Contains(err.Error(), "less than 2 MB") {
		t.Fatalf("unpack of 4 MB with 1 MB to spare: %v", err)
	}
	if b.used > 2<<20 {
		t.Errorf("unpacked %d bytes of the 1 MB there was room for", b.used)
	}
}

// A file's runs of zeros are unpacked as holes: 8 MB of zeros and one
// byte take a block of disk, and read back the same.
func TestUnpackWritesZerosAsHoles(t *testing.T) {
	body := strings.Repeat("\x00", 4<<20) + "x" + strings.Repeat("\x00", 4<<20)
	root := filepath.Join(t.TempDir(), "root")
	if _, err := Unpack(bytes.NewReader(layerTar(t, entry{name: "sparse", typ: tar.TypeReg, body: body})), root); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "sparse"))
	if err != nil || string(got) != body {
		t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(body))
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "sparse"), &st); err != nil {
		t.Fatal(err)
	}
	if used := st.Blocks * 512; used > 1<<20 {
		t.Errorf("8 MB of zeros took %d bytes of disk", used)
	}
}

// An image refused while it unpacks (here a hostile entry in its second
// layer; the free space running out alike) under a name another image
// has leaves the store as it was: the layout's index names the old image
// again, and the new one's layers and blobs are gone.
func TestAnImageRefusedWhileItUnpacksLeavesTheStoreAsItWas(t *testing.T) {
	needRoot(t)
	s := openStore(t)
	dir := t.TempDir()
	tag, _ := name.NewTag("hostile:v1")
	load := func(file string, ls ...[]byte) error {
		img := empty.Image
		for _, l := range ls {
			img, _ = mutate.AppendLayers(img, tarLayer(t, l))
		}
		if err := tarball.WriteToFile(filepath.Join(dir, file), tag, img); err != nil {
			t.Fatal(err)
		}
		_, err := s.Load(filepath.Join(dir, file), "", nil)
		return err
	}
	r := byte(tar.TypeReg)
	if err := load("good.tar", layerTar(t, entry{name: "good", typ: r, body: "g"})); err != nil {
		t.Fatal(err)
	}
	old, _ := s.Get("hostile:v1")
	before := flat(t, filepath.Dir(s.Dir))
	err := load("bad.tar", layerTar(t, entry{name: "fine", typ: r, body: "f"}), layerTar(t, entry{name: "../bad", typ: r, body: "x"}))
	if !errors.Is(err, ErrHostile) {
		t.Fatalf("load of a hostile image: %v", err)
	}
	if after := flat(t, filepath.Dir(s.Dir)); !slices.Equal(before, after) {
		t.Errorf("the store changed:\nbefore %q\nafter  %q", before, after)
	}
	if im, err := s.Get("hostile:v1"); err != nil || im.Digest != old.Digest {
		t.Errorf("hostile:v1 after the refused load: %v %v, want the image it named, %s", im.Digest, err, old.Digest)
	}
}

// Unpacking stops at the entry bound, should a layer hold more entries
// than its digest's check counted, and says how many it had made.
func TestUnpackStopsAtTheEntryBound(t *testing.T) {
	b := &budget{bound: 1 << 40, entryBound: 10, entryWhy: "test", dir: t.TempDir(), space: func(string) (int64, int64, error) { return 1 << 40, 0, nil }}
	var many []entry
	for i := range 30 {
		many = append(many, entry{name: fmt.Sprintf("f%d", i), typ: tar.TypeReg})
	}
	root := filepath.Join(b.dir, "root")
	_, err := unpack(b.reader(bytes.NewReader(layerTar(t, many...))), root, b.takeEntry)
	if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "more than 10 entries") || !strings.Contains(err.Error(), "stopped after 10 entries, and what it unpacked is removed") {
		t.Fatalf("unpack of 30 entries with a bound of 10: %v", err)
	}
	if des, _ := os.ReadDir(root); len(des) > 10 {
		t.Errorf("made %d entries, past the bound", len(des))
	}
}

// Unpacking stops before the layer store's filesystem has less than its
// reserve of inodes free, whatever the bound.
func TestUnpackStopsBeforeTheStoresInodesRunOut(t *testing.T) {
	b := &budget{bound: 1 << 40, entryBound: 1 << 40, entryWhy: "test", dir: "/the/store"}
	b.space = func(string) (int64, int64, error) { return 1 << 40, 0, nil }
	// 3000 inodes free before the unpack, 1000 of them kept.
	b.inodes = func(string) (int64, int64, error) { return 3000 - b.entries, 1000, nil }
	var many []entry
	for i := range 4000 {
		many = append(many, entry{name: fmt.Sprintf("f%d", i), typ: tar.TypeReg})
	}
	_, err := unpack(b.reader(bytes.NewReader(layerTar(t, many...))), filepath.Join(t.TempDir(), "root"), b.takeEntry)
	if !errors.Is(err, ErrStoreFull) || !strings.Contains(err.Error(), "/the/store has") || !strings.Contains(err.Error(), "less than 1000 are left") {
		t.Fatalf("unpack of 4000 entries with 2000 inodes to spare: %v", err)
	}
	// It looks every statfsEntries entries, as at the free space every MB.
	if b.entries > 2000+statfsEntries {
		t.Errorf("unpacked %d entries of the 2000 there was room for", b.entries)
	}
}

// A fetch's budget counts compressed bytes, and its error says so.
func TestAFetchCountsCompressedBytes(t *testing.T) {
	b := &budget{bound: 1 << 20, why: "test", space: func(string) (int64, int64, error) { return 1 << 40, 0, nil }}
	fetch, claim := b.fetching(t.TempDir())
	if err := claim.take(2 << 20); !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "more than 1 MB compressed, the most one image may fetch (test); refused before any of it was fetched") {
		t.Errorf("a claim of 2 MB with a bound of 1 MB: %v", err)
	}
	_, err := io.Copy(io.Discard, fetch.reader(bytes.NewReader(make([]byte, 2<<20))))
	if !errors.Is(err, ErrImageTooLarge) || !strings.Contains(err.Error(), "what it fetched is removed") {
		t.Errorf("a fetch of 2 MB with a bound of 1 MB: %v", err)
	}
	if err := claim.take(-1); !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("a claim of -1 bytes: %v", err)
	}
}
