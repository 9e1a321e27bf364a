package images

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// A registry that answers and then stops sending (the manifest, or a
// layer, cut off half way) fails the pull after the idle time, the
// error naming the image, what stalled and the time, and leaves nothing
// in the store (ut32 F6: the pull hung for ever). The registry here
// gives up after stallFor; the code before the idle timeout waited for
// it, and then failed on the short body.
func TestPullOfAStalledTransferFails(t *testing.T) {
	needRoot(t)
	const stallFor = 10 * time.Second
	img := twoLayers(t, nil)
	top := mustLayers(t, img)[1]
	topDigest, _ := top.Digest()
	rc, err := top.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	layer, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	var stall atomic.Value // the path suffix whose answer stalls
	stall.Store("")
	host := hostileRegistry(t, img, func(w http.ResponseWriter, r *http.Request) bool {
		suffix := stall.Load().(string)
		if suffix == "" || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, suffix) {
			return false
		}
		body := layer
		if strings.Contains(suffix, "/manifests/") {
			var mt string
			body, mt = served(t, img, func(*v1.Manifest) {})
			w.Header().Set("Content-Type", mt)
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(stallFor):
		}
		return true
	})
	s := openStore(t)
	before := files(t, s)
	ref := host + "/lie:v1"
	for _, c := range []struct{ what, suffix string }{
		{"the manifest", "/lie/manifests/v1"},
		{"layer 1", "/blobs/" + topDigest.String()},
	} {
		stall.Store(c.suffix)
		start := time.Now()
		_, err := s.Pull(context.Background(), ref, PullOptions{Idle: 300 * time.Millisecond}, nil)
		if d := time.Since(start); d > stallFor/2 {
			t.Errorf("%s stalled: the pull took %v, with an idle time of 300ms", c.what, d)
		}
		t.Logf("%s stalled: %v", c.what, err)
		if !errors.Is(err, ErrRegistryStalled) {
			t.Errorf("%s stalled: the pull should fail as %q: %v", c.what, ErrRegistryStalled, err)
		}
		for _, want := range []string{"image pull " + ref, c.suffix, "no byte", "300ms"} {
			if err != nil && !strings.Contains(err.Error(), want) {
				t.Errorf("%s stalled: the error lacks %q: %v", c.what, want, err)
			}
		}
		checkNothingLeft(t, s, before, c.what+" stalled")
	}
	stall.Store("")
	if _, err := s.Pull(context.Background(), ref, PullOptions{Idle: 300 * time.Millisecond}, nil); err != nil {
		t.Errorf("the pull once the registry sends: %v", err)
	}
}
