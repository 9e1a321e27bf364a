package repl

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// `image pull` from a registry the test serves on loopback, whose images
// are built to take the state dir's disk, inodes or the session's
// memory: a layer of 150 empty files past $STEPBOX_IMAGE_ENTRIES, a
// manifest that gives a layer 50 GB, one that gives the config 64 MB.
// Each is refused with a message naming the image and the bound, none
// of it fetched, and the store holds no image after.
func TestImagePullRefusesWhatAHostileRegistrySends(t *testing.T) {
	needRoot(t)
	t.Setenv("STEPBOX_IMAGE_ENTRIES", "100")
	hdrs := []*tar.Header{}
	for i := range 150 {
		hdrs = append(hdrs, &tar.Header{Name: fmt.Sprintf("f%d", i), Typeflag: tar.TypeReg, Mode: 0o644})
	}
	many, err := mutate.AppendLayers(empty.Image, tarOf(t, hdrs...))
	if err != nil {
		t.Fatal(err)
	}
	small, err := mutate.AppendLayers(empty.Image, tarOf(t, &tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := small.Manifest()
	layerDigest, configDigest := m.Layers[0].Digest, m.Config.Digest
	// What the lying manifests say, and what of the blobs they name was
	// sent.
	lies := map[string]func(*v1.Manifest){
		"/v2/lie/manifests/v1": func(m *v1.Manifest) { m.Layers[0].Size = 50 << 30 },
		"/v2/cfg/manifests/v1": func(m *v1.Manifest) { m.Config.Size = 64 << 20 },
	}
	var sent atomic.Int64
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lie, ok := lies[r.URL.Path]; ok && r.Method == http.MethodGet {
			man := m.DeepCopy()
			lie(man)
			b, _ := json.Marshal(man)
			w.Header().Set("Content-Type", string(man.MediaType))
			w.Write(b)
			return
		}
		if r.Method == http.MethodGet && (r.URL.Path == "/v2/lie/blobs/"+layerDigest.String() || r.URL.Path == "/v2/cfg/blobs/"+configDigest.String()) {
			// At most 8 MB of what the manifests claim, should they be
			// believed.
			w.WriteHeader(http.StatusOK)
			for range 8 {
				n, err := w.Write(make([]byte, 1<<20))
				sent.Add(int64(n))
				if err != nil {
					return
				}
			}
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for ref, img := range map[string]v1.Image{"many:v1": many, "lie:v1": small, "cfg:v1": small} {
		r, _ := name.ParseReference(host + "/" + ref)
		if err := remote.Write(r, img); err != nil {
			t.Fatal(err)
		}
	}

	script := fmt.Sprintf("-image pull %[1]s/many:v1\n-image pull %[1]s/lie:v1\n-image pull %[1]s/cfg:v1\nimages\n", host)
	// Wide, and read with the folds undone: the messages are long.
	out, code := runStepboxAt(t, 2000, filepath.Join(t.TempDir(), "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	out = strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"image pull " + host + "/many:v1: layer 0 of " + host + "/many:v1: image too large: its layers hold more than 100 entries (files, directories, links, whiteouts: an inode each), the most one image may unpack ($STEPBOX_IMAGE_ENTRIES); refused before any of it was unpacked",
		"image pull " + host + "/lie:v1: layer 0 (" + layerDigest.String() + ") of " + host + "/lie:v1, 51200.0 MB as the manifest says: image too large: its layers come to more than",
		"MB compressed, the most one image may fetch (",
		"image pull " + host + "/cfg:v1: image config too large: the manifest gives the config " + configDigest.String() + " 67108864 bytes, and stepbox reads at most 8 MB of an image's config",
		"no images yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := sent.Load(); n != 0 {
		t.Errorf("the registry sent %d bytes of the blobs its manifests lie about, want none fetched", n)
	}
}
