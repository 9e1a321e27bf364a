package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"

	"stepbox/primitives/layers"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("STEPBOX_MUST_WORK") == "1" {
		t.Fatal("this test needs root, and STEPBOX_MUST_WORK=1 forbids skipping it")
	}
	t.Skip("needs root: unpacking sets owners and makes devices")
}

// entry is one tar entry a test layer holds.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	major            int64
}

func layerTar(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0), Devmajor: e.major, Devminor: 3}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func tarLayer(t *testing.T, b []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testImage has three layers with what the issue lists: a whiteout, an
// opaque directory, a hardlink, a symlink, a device, and a config with
// Env, WorkingDir and Cmd.
func testImage(t *testing.T) v1.Image {
	t.Helper()
	d, r := byte(tar.TypeDir), byte(tar.TypeReg)
	l0 := layerTar(t,
		entry{name: "bin/", typ: d, mode: 0o755},
		entry{name: "bin/tool", typ: r, body: "tool v1\n", mode: 0o755},
		entry{name: "etc/", typ: d, mode: 0o755},
		entry{name: "etc/motd", typ: r, body: "base motd\n"},
		entry{name: "etc/issue", typ: r, body: "issue\n"},
		entry{name: "var/cache/", typ: d, mode: 0o755},
		entry{name: "var/cache/a", typ: r, body: "a\n"},
		entry{name: "var/cache/b", typ: r, body: "b\n"},
	)
	l1 := layerTar(t,
		entry{name: "etc/", typ: d, mode: 0o755},
		entry{name: "etc/.wh.issue", typ: r},
		entry{name: "etc/motd", typ: r, body: "new motd\n"},
		entry{name: "var/cache/", typ: d, mode: 0o755},
		entry{name: "var/cache/.wh..wh..opq", typ: r},
		entry{name: "var/cache/c", typ: r, body: "c\n"},
	)
	l2 := layerTar(t,
		entry{name: "app/", typ: d, mode: 0o750},
		entry{name: "app/run.sh", typ: r, body: "#!/bin/sh\necho run\n", mode: 0o755},
		entry{name: "app/run-link", typ: tar.TypeLink, link: "app/run.sh"},
		entry{name: "app/tool", typ: tar.TypeSymlink, link: "/bin/tool"},
		entry{name: "app/null", typ: tar.TypeChar, mode: 0o666, major: 1},
	)
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, l0), tarLayer(t, l1), tarLayer(t, l2))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", HostPlatform().Architecture
	cf.Config.Env = []string{"PATH=/app:/bin", "GREETING=hi"}
	cf.Config.WorkingDir = "/app"
	cf.Config.Cmd = []string{"/app/run.sh"}
	cf.History = []v1.History{{CreatedBy: "ADD base"}, {CreatedBy: "ENV X=1", EmptyLayer: true}, {CreatedBy: "RUN rm /etc/issue"}, {CreatedBy: "COPY app /app"}}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func openStore(t *testing.T) *Store {
	t.Helper()
	return openStoreIn(t, t.TempDir())
}

func openStoreIn(t testing.TB, dir string) *Store {
	t.Helper()
	ls, err := layers.Open(filepath.Join(dir, "layers"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(filepath.Join(dir, "images"), ls)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// registryWith serves imgs (by repository:tag) from go-containerregistry's
// in-process registry on loopback.
func registryWith(t *testing.T, push func(host string)) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	push(host)
	return host
}

func pushImage(t *testing.T, ref string, img v1.Image) {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
}

// flat lists every path of a root filesystem with its kind and content:
// for files their bytes, for symlinks their target.
func flat(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := p[len(root):]
		fi, _ := d.Info()
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			out = append(out, rel+" file "+string(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case fi.IsDir():
			out = append(out, rel+"/")
		default:
			out = append(out, rel+" "+fi.Mode().Type().String())
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// mergedView applies the unpacked layers the way overlayfs reads them,
// without mounting: a whiteout hides a path, an opaque dir what is below.
func mergedView(t *testing.T, s *Store, im Image) string {
	t.Helper()
	dst := t.TempDir()
	for _, l := range im.Layers {
		root := s.Layers.Root(l.Name)
		entries, err := layers.WalkDir(root)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			target := filepath.Join(dst, e.Path)
			switch e.Kind {
			case layers.Whiteout:
				os.RemoveAll(target)
			case layers.OpaqueDir:
				os.RemoveAll(target)
				os.MkdirAll(target, 0o755)
			case layers.Dir:
				os.MkdirAll(target, 0o755)
			case layers.Symlink:
				os.RemoveAll(target)
				os.Symlink(e.Target, target)
			case layers.File:
				b, _ := os.ReadFile(filepath.Join(root, e.Path))
				os.RemoveAll(target)
				os.WriteFile(target, b, 0o644)
			default:
				os.RemoveAll(target)
				unix.Mknod(target, uint32(e.Mode.Perm())|unix.S_IFCHR, int(unix.Mkdev(1, 3)))
			}
		}
	}
	return strings.Join(flat(t, dst), "\n")
}

// extracted is go-containerregistry's own flattened view of img.
func extracted(t *testing.T, img v1.Image) string {
	t.Helper()
	dst := t.TempDir()
	rc := mutate.Extract(img)
	defer rc.Close()
	if _, err := Unpack(rc, filepath.Join(dst, "x")); err != nil {
		t.Fatal(err)
	}
	return strings.Join(flat(t, filepath.Join(dst, "x")), "\n")
}

func TestPullUnpacksEachLayerWithOverlayWhiteouts(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	host := registryWith(t, func(host string) { pushImage(t, host+"/test/app:v1", img) })
	s := openStore(t)
	var events []Event
	im, err := s.Pull(context.Background(), host+"/test/app:v1", PullOptions{}, func(e Event) { events = append(events, e) })
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Layers) != 3 || im.Config.WorkingDir != "/app" || im.Config.Cmd[0] != "/app/run.sh" || im.Config.Env[1] != "GREETING=hi" {
		t.Fatalf("record: %+v", im)
	}
	if got := im.Layers[1].CreatedBy; got != "RUN rm /etc/issue" {
		t.Errorf("layer 1 made by %q, want the history entry that made a layer", got)
	}
	// The whiteout is a 0/0 character device; the opaque dir has its xattr.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(s.Layers.Root(im.Layers[1].Name), "etc/issue"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/issue in layer 1: %v, mode %o rdev %d: want a 0/0 character device", err, st.Mode, st.Rdev)
	}
	buf := make([]byte, 8)
	for _, attr := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(filepath.Join(s.Layers.Root(im.Layers[1].Name), "var/cache"), attr, buf); err != nil || string(buf[:n]) != "y" {
			t.Errorf("var/cache in layer 1: %s = %q, %v", attr, buf[:n], err)
		}
	}
	l2 := s.Layers.Root(im.Layers[2].Name)
	var a, b unix.Stat_t
	unix.Lstat(filepath.Join(l2, "app/run.sh"), &a)
	unix.Lstat(filepath.Join(l2, "app/run-link"), &b)
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("app/run-link: inode %d (nlink %d), run.sh inode %d: want one inode", b.Ino, a.Nlink, a.Ino)
	}
	if a.Mode&0o7777 != 0o755 || a.Mtim.Sec != 1700000000 {
		t.Errorf("app/run.sh: mode %o mtime %d, want the tar's 755 and 1700000000", a.Mode&0o7777, a.Mtim.Sec)
	}
	if err := unix.Lstat(filepath.Join(l2, "app/null"), &a); err != nil || a.Rdev != uint64(unix.Mkdev(1, 3)) {
		t.Errorf("app/null: %v rdev %d, want the device 1/3", err, a.Rdev)
	}
	if got, want := mergedView(t, s, im), extracted(t, img); got != want {
		t.Errorf("layers merged:\n%s\nmutate.Extract:\n%s", got, want)
	}
	l, err := s.Layers.Get(im.Layers[0].Name)
	if err != nil || l.Image != im.Name || l.DiffID != im.Layers[0].DiffID {
		t.Errorf("layer.json of %s: %+v, %v", im.Layers[0].Name, l, err)
	}
	if len(events) == 0 {
		t.Error("no progress events")
	}

	// A second image sharing the base layer fetches and unpacks it once.
	events = nil
	img2, _ := mutate.AppendLayers(empty.Image, mustLayers(t, img)[0])
	pushImage(t, host+"/test/other:v1", img2)
	im2, err := s.Pull(context.Background(), host+"/test/other:v1", PullOptions{}, func(e Event) { events = append(events, e) })
	if err != nil {
		t.Fatal(err)
	}
	if im2.Layers[0].Name != im.Layers[0].Name {
		t.Errorf("shared layer unpacked again as %s (first as %s)", im2.Layers[0].Name, im.Layers[0].Name)
	}
	for _, e := range events {
		if e.State == Fetching || e.State == Unpacking {
			t.Errorf("shared layer %s again: %+v", e.State, e)
		}
	}

	// image rm keeps what the other image uses.
	if _, removed, err := s.Remove(im.Name); err != nil || len(removed) != 2 {
		t.Fatalf("image rm: removed %v, %v", removed, err)
	}
	if _, err := s.Layers.Get(im.Layers[0].Name); err != nil {
		t.Errorf("the shared layer went with image rm: %v", err)
	}
	if _, err := s.Layers.Get(im.Layers[2].Name); !errors.Is(err, layers.ErrNoLayer) {
		t.Errorf("layer %s of the removed image: %v", im.Layers[2].Name, err)
	}
}

func mustLayers(t *testing.T, img v1.Image) []v1.Layer {
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestPullPicksTheHostPlatformFromAnIndexAndNamesWhatItLacks(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	other := "s390x"
	if HostPlatform().Architecture == other {
		other = "riscv64"
	}
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: HostPlatform().Architecture}}},
	)
	only := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: other}}})
	host := registryWith(t, func(host string) {
		for ref, ii := range map[string]v1.ImageIndex{"/multi:v1": idx, "/foreign:v1": only} {
			r, _ := name.ParseReference(host + ref)
			if err := remote.WriteIndex(r, ii); err != nil {
				t.Fatal(err)
			}
		}
	})
	s := openStore(t)
	im, err := s.Pull(context.Background(), host+"/multi:v1", PullOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if im.Platform != "linux/"+HostPlatform().Architecture {
		t.Errorf("platform %s", im.Platform)
	}
	_, err = s.Pull(context.Background(), host+"/foreign:v1", PullOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "the index has linux/"+other) {
		t.Errorf("pull of an image for %s only: %v", other, err)
	}
	_, err = s.Pull(context.Background(), host+"/missing:v1", PullOptions{}, nil)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("pull of an unknown reference: %v", err)
	}
	if n := len(dirNames(t, filepath.Join(s.Dir, "oci", "blobs", "sha256"), ".part-")); n != 0 {
		t.Errorf("%d partial blobs left", n)
	}
}

func dirNames(t *testing.T, dir, prefix string) []string {
	des, _ := os.ReadDir(dir)
	var out []string
	for _, de := range des {
		if strings.HasPrefix(de.Name(), prefix) {
			out = append(out, de.Name())
		}
	}
	return out
}

func TestLoadReadsDockerSaveAndOCILayoutArchives(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	dir := t.TempDir()
	tag, _ := name.NewTag("example.com/saved/app:v2")
	docker := filepath.Join(dir, "docker.tar")
	if err := tarball.WriteToFile(docker, tag, img); err != nil {
		t.Fatal(err)
	}
	lay := filepath.Join(dir, "layout")
	p, err := layout.Write(lay, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{refAnnotation: "example.com/oci/app:v3"})); err != nil {
		t.Fatal(err)
	}
	ociTar := filepath.Join(dir, "oci.tar")
	tarDir(t, lay, ociTar)
	// Docker 25 and later save an OCI layout with a manifest.json that
	// points into its blobs.
	m, _ := img.Manifest()
	entry := tarball.Descriptor{Config: "blobs/sha256/" + m.Config.Digest.Hex, RepoTags: []string{"example.com/new/app:v4"}}
	for _, l := range m.Layers {
		entry.Layers = append(entry.Layers, "blobs/sha256/"+l.Digest.Hex)
	}
	mj, _ := json.Marshal(tarball.Manifest{entry})
	os.WriteFile(filepath.Join(lay, "manifest.json"), mj, 0o644)
	docker25 := filepath.Join(dir, "docker25.tar")
	tarDir(t, lay, docker25)
	os.Remove(filepath.Join(lay, "manifest.json"))

	s := openStore(t)
	want := extracted(t, img)
	for path, name := range map[string]string{docker: "example.com/saved/app:v2", docker25: "example.com/new/app:v4", lay: "example.com/oci/app:v3", ociTar: "example.com/oci/app:v3"} {
		ims, err := s.Load(path, "", nil)
		if err != nil {
			t.Fatalf("load %s: %v", path, err)
		}
		if len(ims) != 1 || ims[0].Name != name {
			t.Fatalf("load %s: %+v", path, ims)
		}
		if got := mergedView(t, s, ims[0]); got != want {
			t.Errorf("load %s: merged\n%s\nwant\n%s", path, got, want)
		}
	}
	junk := filepath.Join(dir, "junk.tar")
	os.WriteFile(junk, []byte("this is not a tar archive at all, not even close to 512 bytes"), 0o600)
	if _, err := s.Load(junk, "", nil); !errors.Is(err, ErrNotImage) {
		t.Errorf("load of a corrupt archive: %v", err)
	}
}

func tarDir(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	tw.Close()
}

func TestUnpackRefusesEntriesThatLeaveTheLayer(t *testing.T) {
	needRoot(t)
	d, r := byte(tar.TypeDir), byte(tar.TypeReg)
	outside := t.TempDir()
	cases := map[string][]entry{
		"dotdot":            {{name: "../../escaped", typ: r, body: "x"}},
		"absolute":          {{name: "/etc/escaped", typ: r, body: "x"}},
		"through a symlink": {{name: "etc", typ: tar.TypeSymlink, link: outside}, {name: "etc/escaped", typ: r, body: "x"}},
		"relative symlink":  {{name: "a/", typ: d}, {name: "a/up", typ: tar.TypeSymlink, link: "../.."}, {name: "a/up/escaped", typ: r, body: "x"}},
		"hardlink outside":  {{name: "passwd", typ: tar.TypeLink, link: "../../../etc/passwd"}},
		"hardlink via link": {{name: "l", typ: tar.TypeSymlink, link: "/etc"}, {name: "passwd", typ: tar.TypeLink, link: "l/passwd"}},
	}
	for what, entries := range cases {
		root := filepath.Join(t.TempDir(), "root")
		_, err := Unpack(bytes.NewReader(layerTar(t, entries...)), root)
		if !errors.Is(err, ErrHostile) {
			t.Errorf("%s: %v, want %v", what, err, ErrHostile)
		}
	}
	if des, _ := os.ReadDir(outside); len(des) != 0 {
		t.Errorf("written outside the layer: %v", des)
	}
}

func TestUnpackRefusesAFileLargerThanTheFreeSpace(t *testing.T) {
	needRoot(t)
	// A header claiming 10 TB, and no data behind it.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Size: 10 << 40, Mode: 0o644})
	root := filepath.Join(t.TempDir(), "root")
	_, err := Unpack(&buf, root)
	if err == nil || !strings.Contains(err.Error(), "free: refused") {
		t.Errorf("a 10 TB claim: %v", err)
	}
}

func TestUnpackFailureLeavesNoLayer(t *testing.T) {
	needRoot(t)
	s := openStore(t)
	bad := layerTar(t, entry{name: "ok", typ: tar.TypeReg, body: "fine"}, entry{name: "../bad", typ: tar.TypeReg, body: "x"})
	img, _ := mutate.AppendLayers(empty.Image, tarLayer(t, layerTar(t, entry{name: "good", typ: tar.TypeReg, body: "g"})), tarLayer(t, bad))
	dir := t.TempDir()
	tag, _ := name.NewTag("hostile:v1")
	tarball.WriteToFile(filepath.Join(dir, "h.tar"), tag, img)
	if _, err := s.Load(filepath.Join(dir, "h.tar"), "", nil); !errors.Is(err, ErrHostile) {
		t.Fatalf("load of a hostile image: %v", err)
	}
	list, _ := s.Layers.List()
	if len(list) != 0 {
		t.Errorf("layers left after a failed load: %+v", list)
	}
	if ims, _ := s.List(); len(ims) != 0 {
		t.Errorf("images left after a failed load: %+v", ims)
	}
}

func TestResolveUserReadsTheImagesPasswd(t *testing.T) {
	passwd := "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n"
	group := "root:x:0:\nstaff:x:50:\n"
	for user, want := range map[string][2]uint32{"app": {1000, 1001}, "1000": {1000, 1001}, "app:staff": {1000, 50}, "7:8": {7, 8}, "42": {42, 0}} {
		uid, gid, err := ResolveUser(user, strings.NewReader(passwd), strings.NewReader(group))
		if err != nil || uid != want[0] || gid != want[1] {
			t.Errorf("%s: %d:%d %v, want %v", user, uid, gid, err, want)
		}
	}
	if _, _, err := ResolveUser("nobody", strings.NewReader(passwd), nil); err == nil {
		t.Error("an unknown user resolved")
	}
}

// A registry that cuts a layer's download short, or refuses it: the
// pull fails saying so, and leaves no partial blob, layer or image.
func TestPullCutShortLeavesNothingBehind(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var modeV atomic.Value
	modeV.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode := modeV.Load().(string)
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") && mode != "" {
			ls, _ := img.Layers()
			d, _ := ls[2].Digest()
			if strings.HasSuffix(r.URL.Path, d.String()) {
				if mode == "refuse" {
					http.Error(w, "no", http.StatusForbidden)
					return
				}
				size, _ := ls[2].Size()
				w.Header().Set("Content-Length", fmt.Sprint(size))
				w.WriteHeader(http.StatusOK)
				w.Write([]byte("partial"))
				return // the connection closes short of Content-Length
			}
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pushImage(t, host+"/cut:v1", img)
	s := openStore(t)
	for _, m := range []string{"cut", "refuse"} {
		modeV.Store(m)
		_, err := s.Pull(context.Background(), host+"/cut:v1", PullOptions{}, nil)
		if err == nil {
			t.Fatalf("%s: the pull succeeded", m)
		}
		if want := map[string]string{"cut": "layer 2", "refuse": "403"}[m]; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to name %q", m, err, want)
		}
		if n := dirNames(t, filepath.Join(s.Dir, "oci", "blobs", "sha256"), ".part-"); len(n) != 0 {
			t.Errorf("%s: partial blobs left: %v", m, n)
		}
		if list, _ := s.Layers.List(); len(list) != 0 {
			t.Errorf("%s: layers left: %+v", m, list)
		}
		if ims, _ := s.List(); len(ims) != 0 {
			t.Errorf("%s: images left: %+v", m, ims)
		}
	}
	modeV.Store("")
	if _, err := s.Pull(context.Background(), host+"/cut:v1", PullOptions{}, nil); err != nil {
		t.Errorf("the pull once the registry serves the layer: %v", err)
	}
}

func TestOpenRemovesPartialBlobsOfAKilledPull(t *testing.T) {
	s := openStore(t)
	dir := filepath.Join(s.Dir, "oci", "blobs", "sha256")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, ".part-123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "abc"), []byte("whole"), 0o600)
	if _, err := Open(s.Dir, s.Layers); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir, ""); len(got) != 1 || got[0] != "abc" {
		t.Errorf("blobs after Open: %v, want only abc", got)
	}
}

// A registry that wants a password gets the one the Docker config holds
// for it, as `docker pull` would send.
func TestPullSendsTheDockerConfigsCredentials(t *testing.T) {
	needRoot(t)
	img := testImage(t)
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	const auth = "Basic c3RlcGJveDpzZWNyZXQ=" // stepbox:secret
	var locked atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if locked.Load() && r.Header.Get("Authorization") != auth {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pushImage(t, host+"/private:v1", img)
	locked.Store(true)

	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", "")
	s := openStore(t)
	if _, err := s.Pull(context.Background(), host+"/private:v1", PullOptions{}, nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("pull without credentials: %v, want the registry's 401", err)
	}
	os.MkdirAll(filepath.Join(home, ".docker"), 0o700)
	config := fmt.Sprintf(`{"auths": {%q: {"auth": "c3RlcGJveDpzZWNyZXQ="}}}`, host)
	os.WriteFile(filepath.Join(home, ".docker", "config.json"), []byte(config), 0o600)
	if _, err := s.Pull(context.Background(), host+"/private:v1", PullOptions{}, nil); err != nil {
		t.Errorf("pull with the Docker config's credentials: %v", err)
	}
}
