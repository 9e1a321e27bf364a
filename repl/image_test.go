package repl

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"stepbox/primitives/images"
)

// The demo image, loaded from the archive fixtures build, stacked by
// `mount overlay IMAGE` in a real box: its whiteout hides base's
// /etc/issue, and exec runs with its Env, WorkingDir and Cmd.
func TestMountOverlayImageRunsItsCmdInItsWorkingDir(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	archive := filepath.Join(dir, "demo.tar")
	script := "image demo " + archive + "\nimage load " + archive + "\nimages\nimage show stepbox/demo\n" +
		"new a\nunshare mnt pid uts\nmount overlay stepbox/demo\npivot_root\n" +
		"exec\nexec cat /etc/motd\n-exec cat /etc/issue\nexec sh -c 'echo env=$GREETING'\nstack\n" +
		"-image rm stepbox/demo\nrm a\nimage rm stepbox/demo\nimages\n"
	out, code := runStepbox(t, filepath.Join(dir, "state"), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"image stepbox/demo:latest (linux/",
		"hello from /app as uid 0",
		"welcome to the stepbox demo image",
		"cat: can't open '/etc/issue': No such file or directory",
		"env=hello",
		"- /etc/issue",
		"+ /app/", // a directory, listed with its slash and not counted as a file
		"demo.1",
		"layer is in use: it may still be mounted",
		"image stepbox/demo:latest removed, and its layers demo.0, demo.1",
		"no images yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// tarOf is a layer tar of hdrs, each regular file holding body.
// layerArchive writes at p a `docker save` archive of one image tagged
// ref: layer, on a config change edits (nil: left as it is).
func layerArchive(t *testing.T, p, ref string, layer v1.Layer, change func(*v1.Config)) string {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		change(&cf.Config)
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
	}
	tag, _ := name.NewTag(ref)
	if err := tarball.WriteToFile(p, tag, img); err != nil {
		t.Fatal(err)
	}
	return p
}

// refFile is an archive's file name for the reference ref.
func refFile(ref string) string { return strings.NewReplacer("/", "_", ":", "_").Replace(ref) + ".tar" }

func tarOf(t *testing.T, hdrs ...*tar.Header) v1.Layer {
	t.Helper()
	return tarWith(t, nil, hdrs...)
}

// tarWith is tarOf with the bodies of the files bodies names.
func tarWith(t *testing.T, bodies map[string]string, hdrs ...*tar.Header) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		body := ""
		if h.Typeflag == tar.TypeReg {
			body = "content of " + h.Name + "\n"
			if b, ok := bodies[h.Name]; ok {
				body = b
			}
			h.Size = int64(len(body))
		}
		if h.Mode == 0 {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// listTree lists every path under root with its type, mode and content
// (files) or target (symlinks).
func listTree(t *testing.T, root string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		fi, _ := d.Info()
		line := p[len(root):] + " " + fi.Mode().String()
		switch {
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += " " + strings.TrimSpace(string(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		out = append(out, line)
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// The overlay the kernel mounts from an image's unpacked layers shows
// what go-containerregistry's own flattening (mutate.Extract) shows:
// whiteouts, an opaque directory, a hard link, symlinks, a device.
func TestImageOverlayMatchesTheFlattenedImage(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir, r, d := t.TempDir(), byte(tar.TypeReg), byte(tar.TypeDir)
	img, err := mutate.AppendLayers(empty.Image,
		tarOf(t, &tar.Header{Name: "etc/", Typeflag: d}, &tar.Header{Name: "etc/a", Typeflag: r, Mode: 0o644}, &tar.Header{Name: "etc/b", Typeflag: r},
			&tar.Header{Name: "cache/", Typeflag: d}, &tar.Header{Name: "cache/old", Typeflag: r}, &tar.Header{Name: "cache/sub/", Typeflag: d}),
		tarOf(t, &tar.Header{Name: "etc/.wh.b", Typeflag: r}, &tar.Header{Name: "cache/", Typeflag: d, Mode: 0o700},
			&tar.Header{Name: "cache/.wh..wh..opq", Typeflag: r}, &tar.Header{Name: "cache/new", Typeflag: r}),
		tarOf(t, &tar.Header{Name: "bin/", Typeflag: d}, &tar.Header{Name: "bin/tool", Typeflag: r},
			&tar.Header{Name: "bin/tool2", Typeflag: tar.TypeLink, Linkname: "bin/tool"},
			&tar.Header{Name: "bin/rel", Typeflag: tar.TypeSymlink, Linkname: "tool"},
			&tar.Header{Name: "bin/abs", Typeflag: tar.TypeSymlink, Linkname: "/etc/a"},
			&tar.Header{Name: "null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666},
			&tar.Header{Name: "etc/a", Typeflag: r, Mode: 0o600}),
	)
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "merge.tar")
	tag, _ := name.NewTag("test/merge:v1")
	if err := tarball.WriteToFile(archive, tag, img); err != nil {
		t.Fatal(err)
	}
	view := filepath.Join(dir, "view")
	out, code := runStepbox(t, filepath.Join(dir, "state"), "image load "+archive+"\nnew a\nunshare mnt\nmount overlay test/merge:v1\n"+
		"!cp -a \"$BOX_ROOT/.\" "+view+"\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	flat := filepath.Join(dir, "flat")
	rc := mutate.Extract(img)
	defer rc.Close()
	if _, err := images.Unpack(rc, flat); err != nil {
		t.Fatal(err)
	}
	if got, want := listTree(t, view), listTree(t, flat); got != want {
		t.Errorf("the box's overlay:\n%s\nmutate.Extract:\n%s", got, want)
	}
	if !strings.Contains(listTree(t, view), "/cache/new") || strings.Contains(listTree(t, view), "/etc/b") {
		t.Errorf("whiteouts not applied:\n%s", listTree(t, view))
	}
}

// `image load PATH NAME` names the archive's one image NAME, as `docker
// tag` would; loading another image under a name taken says so, and
// names the box still standing on the old image's layers.
func TestImageLoadNameTagsTheImageAndSaysWhatItReplaced(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir, r := t.TempDir(), byte(tar.TypeReg)
	archive := func(file, ref, body string) string {
		return layerArchive(t, filepath.Join(dir, file), ref, tarOf(t, &tar.Header{Name: body, Typeflag: r, Mode: 0o644}), nil)
	}
	first, second := archive("a.tar", "test/first:v1", "one"), archive("b.tar", "test/second:v2", "two")
	out, code := runStepbox(t, filepath.Join(dir, "state"), "image load "+first+" test/app:v1\nnew a\nunshare mnt\nmount overlay test/app:v1\n"+
		"image load "+second+" test/app:v1\nimages\n-image load "+second+" BAD:v1\nnew c\nunshare mnt\n-mount overlay stepbox/nope:1\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"image test/app:v1 (",
		"note: test/app:v1 named image sha256:",
		"box a still stands on the old image's layers",
		"NAME is no image reference",
		"no such image stepbox/nope:1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "test/first") || strings.Contains(out, "test/second") {
		t.Errorf("the archives' own tags were used, not NAME:\n%s", out)
	}
}

// An image whose WorkingDir its layers lack: exec makes it, as runc and
// Docker do, owned as the box's / is; one that would lead through a
// symlink out of the box is refused, naming the path, and nothing is made
// on the host.
func TestExecMakesAMissingWorkingDirInsideTheBox(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := func(ref, wd string, hdrs ...*tar.Header) string {
		return layerArchive(t, filepath.Join(dir, refFile(ref)), ref, tarOf(t, hdrs...), func(c *v1.Config) { c.WorkingDir = wd })
	}
	wd := archive("test/wd:v1", "/srv/app", &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	evil := archive("test/evil:v1", "/link/made", &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside})
	out, code := runStepbox(t, filepath.Join(dir, "state"), "image load "+wd+"\nimage load "+evil+"\n"+
		"new a\nunshare mnt pid\nmount overlay test/wd:v1 base\npivot_root\nexec pwd\nexec stat -c '%A %u' /srv/app\n"+
		"new b\nunshare mnt pid\nmount overlay test/evil:v1 base\npivot_root\n-exec pwd\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"\n/srv/app\n", "drwxr-xr-x 0", "the image's WorkingDir /link/made"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "made")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("exec made %s on the host: %v", filepath.Join(outside, "made"), err)
	}
}

// An image whose layers unpack to more than $STEPBOX_IMAGE_MB (3 MB of
// zeros, a few KB in the archive) is refused by `image load` before any
// of it is unpacked, naming the layer and the bound, and the
// layer and image stores are as they were: no partial layer dir, no blob
// (ut29 F8: a 19 MB archive unpacked to 4.1 GB of /var/lib/stepbox).
func TestImageLoadRefusesAnImageLargerThanTheBound(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	t.Setenv("STEPBOX_IMAGE_MB", "1")
	dir := t.TempDir()
	state, lib := filepath.Join(dir, "state"), filepath.Join(dir, "state", "lib")
	zeros := tarWith(t, map[string]string{"zeros": strings.Repeat("\x00", 3<<20)}, &tar.Header{Name: "zeros", Typeflag: tar.TypeReg, Mode: 0o644})
	archive := layerArchive(t, filepath.Join(dir, "big.tar"), "test/big:v1", zeros, nil)
	if out, code := runStepbox(t, state, "images\n", "--plain"); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	// The image store, and the layers' names: each session stamps the
	// built-in layers anew.
	stores := func() string {
		des, _ := os.ReadDir(filepath.Join(lib, "layers"))
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		// The layout's blobs/sha256, made for the first blob and kept
		// empty, is no part of the image.
		blobDirs := regexp.MustCompile(`(?m)^/oci/blobs(/sha256)? d.*\n`)
		return blobDirs.ReplaceAllString(listTree(t, filepath.Join(lib, "images"))+"\n", "") + "layers: " + strings.Join(names, " ")
	}
	before := stores()
	out, code := runStepbox(t, state, "-image load "+archive+"\nimages\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{
		"image load " + archive + ": layer 0 of test/big:v1: image too large: its layers come to more than 1 MB uncompressed, the most one image may unpack ($STEPBOX_IMAGE_MB); refused before any of it was unpacked",
		"no images yet",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if after := stores(); after != before {
		t.Errorf("the state dir changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// `image show` of an image whose config has 200,000 Env entries, 50 Cmd
// words and a WorkingDir of 100 KB prints a few lines: each list cut
// after its first entries, saying how many more, each value cut (ut29
// F7: all of them, 22 MB, were printed).
func TestImageShowBoundsTheImagesConfig(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	env := make([]string, 200_000)
	for i := range env {
		env[i] = fmt.Sprintf("V%d=x", i)
	}
	archive := layerArchive(t, filepath.Join(dir, "big.tar"), "test/bigcfg:v1", tarOf(t, &tar.Header{Name: "f", Typeflag: tar.TypeReg}), func(c *v1.Config) {
		c.Env, c.WorkingDir = env, "/"+strings.Repeat("w", 100_000)
		for i := range 50 {
			c.Cmd = append(c.Cmd, fmt.Sprintf("arg%d", i))
		}
	})
	out, code := runStepbox(t, filepath.Join(dir, "state"), "image load "+archive+"\nimage show test/bigcfg:v1\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%.4000s", code, out)
	}
	_, show, _ := strings.Cut(out, "image show test/bigcfg:v1")
	for _, want := range []string{"V0=x V1=x", "… and 199990 more", `"arg9" … and 40 more]`, "… (100001 bytes)"} {
		if !strings.Contains(show, want) {
			t.Errorf("image show lacks %q:\n%.4000s", want, show)
		}
	}
	if len(show) > 4000 || strings.Contains(show, "V10=x") || strings.Contains(show, "arg10") {
		t.Errorf("image show printed %d bytes:\n%.4000s", len(show), show)
	}
}

// An image whose Entrypoint, Cmd, WorkingDir and User hold a terminal
// title (ESC ] 0 ; … BEL) and a screen clear (CSI 2 J): `image show`,
// `mount overlay`'s line, `explain exec` and `explain` after `exec`
// print them escaped, never raw (ut29 F14: explain's summary after exec
// retitled and cleared the learner's terminal).
func TestImageConfigEscapesNeverReachTheTerminal(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	const title, clear = "\x1b]0;IMG\a", "\x1b[2J"
	user := "u" + clear + "x"
	layer := tarWith(t, map[string]string{"etc/passwd": "root:x:0:0::/root:/bin/sh\n" + user + ":x:0:0::/:/bin/sh\n"},
		&tar.Header{Name: "etc/", Typeflag: tar.TypeDir}, &tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644})
	archive := layerArchive(t, filepath.Join(dir, "esc.tar"), "test/esc:v1", layer, func(c *v1.Config) {
		c.Entrypoint, c.Cmd = []string{"/nope" + title + clear}, []string{"arg" + title}
		c.WorkingDir, c.User = "/w"+title+clear, user
	})
	out, code := runStepbox(t, filepath.Join(dir, "state"), "image load "+archive+"\nimage show test/esc:v1\n"+
		"new a\nunshare mnt\nmount overlay base test/esc:v1\nexplain exec\n-exec\nexplain\nrm a\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, strings.ReplaceAll(out, "\x1b", "<ESC>"))
	}
	for _, want := range []string{
		`Entrypoint ["/nope\x1b]0;IMG\a\x1b[2J"]`,                     // image show
		`its WorkingDir "/w\x1b]0;IMG\a\x1b[2J" and User "u\x1b[2Jx"`, // mount overlay
		`will run /nope\x1b]0;IMG\x07\x1b[2J inside the box`,          // explain exec
		`ran /nope\x1b]0;IMG\x07\x1b[2J inside the box`,               // explain after exec
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, strings.ReplaceAll(out, "\x1b", "<ESC>"))
		}
	}
	if i := strings.IndexByte(out, 0x1b); i >= 0 {
		t.Errorf("a raw ESC reached the output at %q:\n%s", strings.ReplaceAll(out[max(i-80, 0):min(i+40, len(out))], "\x1b", "<ESC>"), strings.ReplaceAll(out, "\x1b", "<ESC>"))
	}
}
