package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// HostPlatform is the platform whose images this machine runs. ggcr
// picks linux/amd64 from an index unless told otherwise, whatever the
// host is.
func HostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// PullOptions tune Pull; the zero value pulls for the host's platform
// with the credentials of the Docker config (~/.docker/config.json,
// $DOCKER_CONFIG) and its credential helpers.
type PullOptions struct {
	Platform  *v1.Platform
	Transport http.RoundTripper
	// Idle is how long the pull waits for the next byte of what the
	// registry is sending; zero is idleMax.
	Idle time.Duration
}

// idleMax is how long a pull waits for the next byte of a manifest or
// blob once the registry has answered: one that sends headers and then
// drips or stops sending the body held `image pull` (and a script under
// `stepbox run`) for ever (ut32 F6). A slow but live registry sends
// something far more often than this.
const idleMax = 30 * time.Second

// ErrRegistryStalled is a pull that got no byte from the registry for
// the idle time.
var ErrRegistryStalled = errors.New("the registry stalled")

// transport is the default transport with deadlines: a registry that
// stops answering fails the pull instead of hanging the session.
func transport() http.RoundTripper {
	t := remote.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = 30 * time.Second
	return t
}

// Pull fetches ref from its registry (Docker Hub when the reference
// names none, as `docker pull` does) for the host's platform and adds
// it to the store. Blobs already in the layout are not fetched again.
func (s *Store) Pull(ctx context.Context, ref string, opts PullOptions, progress Progress) (Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return Image{}, fmt.Errorf("image pull %q: %w (a reference looks like alpine, alpine:3.20, ghcr.io/owner/repo:tag or repo@sha256:…)", ref, err)
	}
	short, err := checkedName(r)
	if err != nil {
		return Image{}, fmt.Errorf("image pull %s: %w", r, err)
	}
	plat := HostPlatform()
	if opts.Platform != nil {
		plat = *opts.Platform
	}
	tr := opts.Transport
	if tr == nil {
		tr = transport()
	}
	idle := opts.Idle
	if idle <= 0 {
		idle = idleMax
	}
	tr = boundedManifests{idleBodies{next: tr, idle: idle}}
	ro := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain), remote.WithTransport(tr)}
	desc, err := remote.Get(r, ro...)
	if err != nil {
		return Image{}, fmt.Errorf("image pull %s: %w", r, err)
	}
	img, err := pickPlatform(desc, plat)
	if err != nil {
		return Image{}, fmt.Errorf("image pull %s: %w", r, err)
	}
	im, err := s.add(img, short, r.Name(), progress)
	if err != nil {
		return Image{}, fmt.Errorf("image pull %s: %w", r, err)
	}
	return im, nil
}

// pickPlatform returns the image of desc for plat: desc itself when it
// is one image of that platform, the matching entry of an index.
func pickPlatform(desc *remote.Descriptor, plat v1.Platform) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		return img, checkPlatform(img, plat)
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	return fromIndex(idx, plat)
}

// fromIndex returns the image of idx for plat, or says which platforms
// idx has.
func fromIndex(idx v1.ImageIndex, plat v1.Platform) (v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		if m.Platform.Satisfies(plat) {
			return idx.Image(m.Digest)
		}
		if m.Platform.OS != "unknown" { // attestations
			have = append(have, m.Platform.String())
		}
	}
	return nil, fmt.Errorf("no image for this host's platform %s; the index has %s", plat, orNone(have))
}

func checkPlatform(img v1.Image, plat v1.Platform) error {
	cf, err := configFile(img)
	if err != nil {
		return err
	}
	if cf.OS == "" && cf.Architecture == "" {
		return nil // a config that names no platform (hand-made images)
	}
	got := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if !got.Satisfies(v1.Platform{OS: plat.OS, Architecture: plat.Architecture}) {
		return fmt.Errorf("the image is for %s, not this host's platform %s", got, plat)
	}
	return nil
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// manifestMax is the most of a manifest or an index stepbox reads: what
// a Docker registry accepts (distribution's maxManifestBodySize), where
// go-containerregistry reads up to 100 MiB. configMax is the most of an
// image's config: a real one is a few KB, a long history some hundred,
// and every command of the image gets its Env.
const (
	manifestMax = 4 << 20
	configMax   = 8 << 20
)

// ErrManifestTooLarge and ErrConfigTooLarge are returned for a manifest
// or config past manifestMax or configMax.
var (
	ErrManifestTooLarge = errors.New("manifest too large")
	ErrConfigTooLarge   = errors.New("image config too large")
)

// configFile reads img's config, refusing one whose size in the
// manifest is past configMax before any of it is read: go-containerregistry
// reads a config whole, as much as the manifest says, and a remote one
// no further.
func configFile(img v1.Image) (*v1.ConfigFile, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, err
	}
	if size := m.Config.Size; size < 0 || size > configMax {
		return nil, fmt.Errorf("%w: the manifest gives the config %s %d bytes, and stepbox reads at most %d MB of an image's config (a real one is a few KB)",
			ErrConfigTooLarge, m.Config.Digest, size, configMax>>20)
	}
	return img.ConfigFile()
}

// boundedManifests refuses a manifest the registry sends of more than
// manifestMax bytes: at once when its Content-Length says so, else at
// the first byte past it.
type boundedManifests struct{ next http.RoundTripper }

func (b boundedManifests) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/manifests/") {
		return resp, err
	}
	tooLarge := func(size string) error {
		return fmt.Errorf("%w: the registry sends %s for %s, and stepbox reads at most %d MB of a manifest (a Docker registry accepts no larger)",
			ErrManifestTooLarge, size, req.URL.Path, manifestMax>>20)
	}
	if resp.ContentLength > manifestMax {
		resp.Body.Close()
		return nil, tooLarge(fmt.Sprintf("%d bytes", resp.ContentLength))
	}
	resp.Body = &boundedBody{ReadCloser: resp.Body, left: manifestMax, err: tooLarge(fmt.Sprintf("more than %d bytes", manifestMax))}
	return resp, nil
}

// boundedBody fails the read that takes it past left bytes.
type boundedBody struct {
	io.ReadCloser
	left int64
	err  error
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return 0, b.err
	}
	return n, err
}

// idleBodies fails the read of an answer's body that gets no byte for
// idle: the transport's timeouts end at the response headers.
type idleBodies struct {
	next http.RoundTripper
	idle time.Duration
}

func (b idleBodies) RoundTrip(req *http.Request) (*http.Response, error) {
	// Cancelling the request's context is what ends a Read blocked on
	// the connection (net/http), and it frees the connection.
	ctx, cancel := context.WithCancel(req.Context())
	resp, err := b.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return resp, err
	}
	resp.Body = &idleBody{ReadCloser: resp.Body, idle: b.idle, cancel: cancel, path: req.URL.Path}
	return resp, nil
}

// idleBody is a body whose every Read waits at most idle.
type idleBody struct {
	io.ReadCloser
	idle   time.Duration
	cancel context.CancelFunc
	path   string
}

func (b *idleBody) Read(p []byte) (int, error) {
	t := time.AfterFunc(b.idle, b.cancel)
	n, err := b.ReadCloser.Read(p)
	if !t.Stop() {
		return n, fmt.Errorf("%w: no byte of %s came for %v, the longest stepbox waits for the next one", ErrRegistryStalled, b.path, b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
