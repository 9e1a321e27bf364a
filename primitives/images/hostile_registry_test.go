package images

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// These tests name the limits as the messages do, not by the constants,
// so that they build, and fail, against the code before the limits.

// hostileRegistry serves img as host/lie:v1 from go-containerregistry's
// registry, except what lie answers itself (it returns true then).
func hostileRegistry(t *testing.T, img v1.Image, lie func(w http.ResponseWriter, r *http.Request) bool) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lie(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	pushImage(t, host+"/lie:v1", img)
	return host
}

// streamMax is the most any test registry sends of one answer: the code
// before the limits would write what a manifest claims (50 GB), and its
// run of these tests must not.
const streamMax = 24 << 20

// stream sends n bytes of junk (at most streamMax), with a
// Content-Length of n or none, and counts in sent what the client took.
func stream(w http.ResponseWriter, n int64, withLength bool, sent *atomic.Int64) {
	if withLength {
		w.Header().Set("Content-Length", fmt.Sprint(n))
	}
	w.WriteHeader(http.StatusOK)
	chunk := []byte(strings.Repeat("junk", 8<<10))
	for left := min(n, streamMax); left > 0; left -= int64(len(chunk)) {
		m, err := w.Write(chunk[:min(left, int64(len(chunk)))])
		sent.Add(int64(m))
		if err != nil {
			return // the client is gone
		}
	}
}

// served is the manifest of img with change made to it, as the
// registry sends it for tag v1.
func served(t *testing.T, img v1.Image, change func(*v1.Manifest)) (body []byte, mediaType string) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	m = m.DeepCopy()
	change(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b, string(m.MediaType)
}

// twoLayers is an image of two small layers, its config naming no
// platform.
func twoLayers(t *testing.T, configured func(*v1.ConfigFile)) v1.Image {
	t.Helper()
	r := byte(tar.TypeReg)
	img, err := mutate.AppendLayers(empty.Image,
		tarLayer(t, layerTar(t, entry{name: "base", typ: r, body: "the layer below\n"})),
		tarLayer(t, layerTar(t, entry{name: "top", typ: r, body: "the layer the registry lies about\n"})))
	if err != nil {
		t.Fatal(err)
	}
	if configured != nil {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		configured(cf)
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// files lists what flat does of the store but directories: the
// layout's blobs/sha256 is made for the first blob and kept empty.
func files(t *testing.T, s *Store) []string {
	return slices.DeleteFunc(flat(t, filepath.Dir(s.Dir)), func(p string) bool { return strings.HasSuffix(p, "/") })
}

// checkNothingLeft fails t when the store holds more than before: a
// partial blob, a blob of the refused image, a layer or a record.
func checkNothingLeft(t *testing.T, s *Store, before []string, what string) {
	t.Helper()
	if after := files(t, s); !slices.Equal(before, after) {
		t.Errorf("%s: the store changed:\nbefore %q\nafter  %q", what, before, after)
	}
	if list, _ := s.Layers.List(); len(list) != 0 {
		t.Errorf("%s: layers left: %+v", what, list)
	}
	if ims, _ := s.List(); len(ims) != 0 {
		t.Errorf("%s: images left: %+v", what, ims)
	}
}

// A manifest that gives a layer 50 GB (or any size past the bound) has
// the pull refused before a byte of that layer is fetched, the error
// naming the image, the layer's digest and the bound; a registry that
// sends more than the manifest says is cut off at the size. Either way
// no partial blob or layer is left.
func TestPullCountsCompressedBlobsAgainstTheBound(t *testing.T) {
	needRoot(t)
	t.Setenv(ImageSizeEnv, "1")
	img := twoLayers(t, nil)
	top := mustLayers(t, img)[1]
	topDigest, _ := top.Digest()
	var claim atomic.Int64
	var withLength atomic.Bool
	var sent atomic.Int64
	host := hostileRegistry(t, img, func(w http.ResponseWriter, r *http.Request) bool {
		c := claim.Load()
		switch {
		case c == 0:
			return false
		case strings.HasSuffix(r.URL.Path, "/lie/manifests/v1"):
			body, mt := served(t, img, func(m *v1.Manifest) { m.Layers[1].Size = c })
			w.Header().Set("Content-Type", mt)
			w.Write(body)
			return true
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+topDigest.String()):
			stream(w, c, withLength.Load(), &sent)
			return true
		}
		return false
	})
	s := openStore(t)
	before := files(t, s)

	claim.Store(50 << 30)
	withLength.Store(true)
	_, err := s.Pull(context.Background(), host+"/lie:v1", PullOptions{}, nil)
	if !errors.Is(err, ErrImageTooLarge) {
		t.Errorf("pull of a layer the manifest says is 50 GB, with a bound of 1 MB: %v", err)
	}
	for _, want := range []string{"image pull " + host + "/lie:v1", "layer 1 (" + topDigest.String() + ")", "51200.0 MB as the manifest says",
		"more than 1 MB compressed", "$" + ImageSizeEnv, "refused before any of it was fetched"} {
		if err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("the registry sent %d bytes of the layer it says is 50 GB, want none fetched", n)
	}
	checkNothingLeft(t, s, before, "50 GB")

	// 600 KB as the manifest says, under the bound; the registry sends
	// 24 MB with no Content-Length.
	claim.Store(600 << 10)
	withLength.Store(false)
	sent.Store(0)
	_, err = s.Pull(context.Background(), host+"/lie:v1", PullOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "layer 1 ("+topDigest.String()+") of "+host+"/lie:v1") {
		t.Errorf("pull of a layer the registry sends more of than the manifest says: %v", err)
	}
	if n := sent.Load(); n >= streamMax {
		t.Errorf("the registry sent all %d bytes of a layer the manifest says is 600 KB", n)
	}
	checkNothingLeft(t, s, before, "more than the manifest says")

	claim.Store(0)
	if _, err := s.Pull(context.Background(), host+"/lie:v1", PullOptions{}, nil); err != nil {
		t.Errorf("the pull once the registry tells the truth: %v", err)
	}
}

// A layer of many empty files, far under the byte bound, is refused past
// the entry bound ($STEPBOX_IMAGE_ENTRIES here; by default at most a
// million and half the free inodes), before any of it is unpacked.
func TestPullRefusesALayerOfMoreEntriesThanTheBound(t *testing.T) {
	needRoot(t)
	const entriesEnv = "STEPBOX_IMAGE_ENTRIES"
	t.Setenv(entriesEnv, "100")
	var many []entry
	for i := range 150 {
		many = append(many, entry{name: fmt.Sprintf("empty/%d", i), typ: tar.TypeReg})
	}
	img, err := mutate.AppendLayers(empty.Image,
		tarLayer(t, layerTar(t, entry{name: "base", typ: tar.TypeReg, body: "below\n"})),
		tarLayer(t, layerTar(t, many...)))
	if err != nil {
		t.Fatal(err)
	}
	host := registryWith(t, func(host string) { pushImage(t, host+"/many:v1", img) })
	s := openStore(t)
	before := files(t, s)
	_, err = s.Pull(context.Background(), host+"/many:v1", PullOptions{}, nil)
	if !errors.Is(err, ErrImageTooLarge) {
		t.Fatalf("pull of a layer of 150 files with a bound of 100 entries: %v", err)
	}
	for _, want := range []string{"image pull " + host + "/many:v1", "layer 1 of " + host + "/many:v1", "more than 100 entries", "$" + entriesEnv, "refused before any of it was unpacked"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q: %v", want, err)
		}
	}
	checkNothingLeft(t, s, before, "150 entries")
	t.Setenv(entriesEnv, "200")
	if _, err := s.Pull(context.Background(), host+"/many:v1", PullOptions{}, nil); err != nil {
		t.Errorf("the same image with a bound of 200 entries: %v", err)
	}
}

// A config past 8 MB (what the image's record keeps of it, Env and Cmd,
// `image show` and every command read) and a manifest past 4 MB are
// refused before they are read whole: a manifest that says its config
// is 64 MB has none of it read, and one of 6 MB is cut off at 4.
func TestPullBoundsTheManifestAndConfigItReads(t *testing.T) {
	needRoot(t)
	big := twoLayers(t, func(cf *v1.ConfigFile) { cf.Config.Env = []string{"HUGE=" + strings.Repeat("x", 9<<20)} })
	img := twoLayers(t, nil)
	var mode atomic.Value
	mode.Store("")
	var sent atomic.Int64
	configDigest, _ := img.ConfigName()
	host := hostileRegistry(t, img, func(w http.ResponseWriter, r *http.Request) bool {
		m := mode.Load().(string)
		switch {
		case m == "" || m == "honest":
			return false
		case strings.HasSuffix(r.URL.Path, "/lie/manifests/v1"):
			body, mt := served(t, img, func(man *v1.Manifest) {
				if m == "config" {
					man.Config.Size = 64 << 20
				}
			})
			w.Header().Set("Content-Type", mt)
			if m == "config" {
				w.Write(body)
				return true
			}
			// Valid JSON: what follows the manifest is white space.
			padded := append(body, strings.Repeat(" ", 6<<20)...)
			if m == "manifest-length" {
				w.Header().Set("Content-Length", fmt.Sprint(len(padded)))
			}
			w.WriteHeader(http.StatusOK)
			for i := 0; i < len(padded); i += 64 << 10 {
				if _, err := w.Write(padded[i:min(i+64<<10, len(padded))]); err != nil {
					return true
				}
				w.(http.Flusher).Flush() // chunked, no Content-Length
			}
			return true
		case m == "config" && r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+configDigest.String()):
			stream(w, 64<<20, true, &sent)
			return true
		}
		return false
	})
	s := openStore(t)
	before := files(t, s)

	mode.Store("honest")
	pushImage(t, host+"/big:v1", big)
	_, err := s.Pull(context.Background(), host+"/big:v1", PullOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "image pull "+host+"/big:v1") || !strings.Contains(err.Error(), "at most 8 MB") {
		t.Errorf("pull of an image whose config is 9 MB: %v", err)
	}
	if _, err := s.Get(host + "/big:v1"); err == nil {
		t.Errorf("the image of a 9 MB config is in the store, for `image show` to read")
	}
	checkNothingLeft(t, s, before, "9 MB config")

	mode.Store("config")
	_, err = s.Pull(context.Background(), host+"/lie:v1", PullOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), configDigest.String()+" 67108864 bytes") || !strings.Contains(err.Error(), "at most 8 MB") {
		t.Errorf("pull of a config the manifest says is 64 MB: %v", err)
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("the registry sent %d bytes of the 64 MB config, want none read", n)
	}
	checkNothingLeft(t, s, before, "64 MB config")

	for _, m := range []string{"manifest-length", "manifest-chunked"} {
		mode.Store(m)
		_, err = s.Pull(context.Background(), host+"/lie:v1", PullOptions{}, nil)
		if err == nil || !strings.Contains(err.Error(), "manifest too large") || !strings.Contains(err.Error(), "/v2/lie/manifests/v1") || !strings.Contains(err.Error(), "at most 4 MB") {
			t.Errorf("%s: pull of a manifest of 6 MB: %v", m, err)
		}
		checkNothingLeft(t, s, before, m)
	}

	mode.Store("")
	if _, err := s.Pull(context.Background(), host+"/lie:v1", PullOptions{}, nil); err != nil {
		t.Errorf("the pull once the registry tells the truth: %v", err)
	}
}
