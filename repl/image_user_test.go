package repl

import (
	"archive/tar"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// userImage writes a `docker save` archive of one layer of hdrs, with
// User in its config, and returns its path.
func userImage(t *testing.T, dir, ref, user string, bodies map[string]string, hdrs ...*tar.Header) string {
	t.Helper()
	return layerArchive(t, filepath.Join(dir, refFile(ref)), ref, tarWith(t, bodies, hdrs...), func(c *v1.Config) { c.User = user })
}

// runStepboxWithin is runStepbox for a script that today's code may
// hang on: after d the session is killed, what it left is cleaned up,
// and the test fails naming the hang.
func runStepboxWithin(t *testing.T, d time.Duration, stateDir, script string) string {
	t.Helper()
	// Built first: on a busy machine the build alone took d (ut34 F4's
	// test failed on it, with no output at all).
	bin := stepboxBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--state-dir", stateDir, "--plain", "run", "-")
	cmd.Env = append(os.Environ(), "COLUMNS=300")
	cmd.Stdin = strings.NewReader(script)
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		exec.Command(stepboxBinary(t), "--state-dir", stateDir, "cleanup").Run()
		t.Fatalf("the session hung for %s:\n%s", d, out)
	}
	return string(out)
}

// An image's User is resolved against the /etc/passwd the box sees: an
// absolute symlink in the image resolves inside the image, never on the
// host (where a file says otherwise); a FIFO, a device or a symlink to
// one is refused at once, naming the file, and the session goes on.
// enter runs as that User too, as exec does and docker exec would.
func TestMountOverlayImageResolvesUserInsideTheImage(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	host := filepath.Join(dir, "host")
	if err := os.Mkdir(host, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(host, "passwd"), []byte("bob:x:4242:4343::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(host, "group"), []byte("bob:x:4343:\n"), 0o644)
	r, l := byte(tar.TypeReg), byte(tar.TypeSymlink)
	inImage := strings.TrimPrefix(host, "/")
	var dirs []*tar.Header
	for p := inImage; p != "."; p = filepath.Dir(p) {
		dirs = append([]*tar.Header{{Name: p + "/", Typeflag: tar.TypeDir}}, dirs...)
	}
	link := userImage(t, dir, "test/link:v1", "bob", map[string]string{inImage + "/passwd": "bob:x:1111:1112::/:/bin/sh\n"},
		append(append([]*tar.Header{{Name: "etc/", Typeflag: tar.TypeDir}}, dirs...),
			&tar.Header{Name: "etc/passwd", Typeflag: l, Linkname: filepath.Join(host, "passwd")},
			&tar.Header{Name: "etc/group", Typeflag: l, Linkname: filepath.Join(host, "group")},
			&tar.Header{Name: inImage + "/passwd", Typeflag: r, Mode: 0o644})...)
	fifo := userImage(t, dir, "test/fifo:v1", "bob", nil, &tar.Header{Name: "etc/", Typeflag: tar.TypeDir},
		&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeFifo, Mode: 0o644}, &tar.Header{Name: "etc/group", Typeflag: tar.TypeFifo, Mode: 0o644})
	zero := userImage(t, dir, "test/zero:v1", "bob", nil, &tar.Header{Name: "etc/", Typeflag: tar.TypeDir}, &tar.Header{Name: "dev/", Typeflag: tar.TypeDir},
		&tar.Header{Name: "dev/zero", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 5, Mode: 0o666},
		&tar.Header{Name: "etc/passwd", Typeflag: l, Linkname: "/dev/zero"})
	out := runStepboxWithin(t, time.Minute, filepath.Join(dir, "state"),
		"image load "+link+"\nimage load "+fifo+"\nimage load "+zero+"\n"+
			"new a\nunshare mnt pid\nmount overlay base test/link:v1\npivot_root\nexec id\nenter -- id\nexplain enter -- id\n"+
			"new b\nunshare mnt pid\n-mount overlay base test/fifo:v1\n"+
			"new c\nunshare mnt pid\n-mount overlay base test/zero:v1\nboxes\n")
	for _, want := range []string{
		"uid=1111(bob) gid=1112", // the image's own file, where its symlink leads inside the box
		`the image's User "bob": open /etc/passwd: not a regular file`, "not a regular file",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "uid=1111(bob) gid=1112") != 2 {
		t.Errorf("exec and enter do not both run as the image's User:\n%s", out)
	}
	if !strings.Contains(out, "as the image's User (uid 1111, gid 1112)") || !strings.Contains(out, "setresuid(1111, 1111, 1111)") {
		t.Errorf("enter's record does not say it runs as the image's User:\n%s", out)
	}
	if strings.Count(out, "not a regular file") < 2 {
		t.Errorf("the FIFO and the device were not both refused as such:\n%s", out)
	}
	if strings.Contains(out, "4242") {
		t.Errorf("the session read the host's file through the image's symlink:\n%s", out)
	}
	// The overlay stays mounted (only rm undoes it): the error says the
	// box has it without the image's settings (ut28 F4).
	if flat := strings.Join(strings.Fields(out), " "); strings.Count(flat, "the overlay is mounted without the image's settings") < 2 {
		t.Errorf("a refused User does not say the overlay stays without the image's settings:\n%s", out)
	}
}

// A directory of the box's PATH that the image made an absolute symlink
// to a host directory: `exec NAME` looks it up inside the box, as the
// kernel will resolve it there, and does not find, run or suggest the
// host's program.
func TestExecLooksUpCommandsInsideTheBoxNotThroughItsSymlinksOnTheHost(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	host := filepath.Join(dir, "hostbin")
	if err := os.MkdirAll(host, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "hostonly-tool"), []byte("#!/bin/sh\necho ran on the host's file\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	img := userImage(t, dir, "test/pathlink:v1", "", nil, &tar.Header{Name: "usr/", Typeflag: tar.TypeDir},
		&tar.Header{Name: "usr/local/", Typeflag: tar.TypeDir},
		&tar.Header{Name: "usr/local/bin", Typeflag: tar.TypeSymlink, Linkname: host})
	out := runStepboxWithin(t, time.Minute, filepath.Join(dir, "state"), "image load "+img+"\n"+
		"new a\nunshare mnt pid\nmount overlay base test/pathlink:v1\npivot_root\n-exec hostonly-tool\n-exec hostonly-too\n")
	if !strings.Contains(out, `"hostonly-tool": command not found in the box`) {
		t.Errorf("exec did not look the command up inside the box:\n%s", out)
	}
	if strings.Count(out, "hostonly-tool") > 2 { // the two commands as typed, and the one error
		t.Errorf("the host's program was named (suggested or run):\n%s", out)
	}
}

// `image show` escapes what an image names: a layer's file names and
// its config's Env, as every panel escapes what a box names.
func TestImageShowEscapesTheImagesFileNamesAndEnv(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	p := layerArchive(t, filepath.Join(dir, "evil.tar"), "test/evil:v1",
		tarOf(t, &tar.Header{Name: "name\x1b]0;TITLE\a\x1b[2Jx", Typeflag: tar.TypeReg, Mode: 0o644}),
		func(c *v1.Config) { c.Env = []string{"EVIL=\x1b]0;ENV\a"} })
	out := runStepboxWithin(t, time.Minute, filepath.Join(dir, "state"), "image load "+p+"\nimage show test/evil:v1\n")
	if strings.ContainsAny(out, "\x1b\a") {
		t.Errorf("image show printed a control character raw: %q", out)
	}
	for _, want := range []string{`+ /name\x1b]0;TITLE\x07\x1b[2Jx`, `EVIL=\x1b]0;ENV\x07`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// ut30 F5: an image whose /proc is a symlink made pivot_root fail at
// `mount proc`, after the pivot: the box was left pivoted without /proc
// under an error that did not say so. The new root's /proc is looked at
// inside it first: pivot_root is refused with nothing changed (the
// prompt still shows no pivot), naming the link, and the link's host
// target is never touched.
func TestPivotRootRefusesAnImagesProcSymlinkBeforeAnythingChanges(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	scratch := filepath.Join(dir, "escd")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	img := userImage(t, dir, "test/proclink:v1", "", nil, &tar.Header{Name: "proc", Typeflag: tar.TypeSymlink, Linkname: scratch})
	out := runStepboxWithin(t, time.Minute, filepath.Join(dir, "state"), "image load "+img+"\n"+
		"new l\nunshare mnt pid\nmount overlay base test/proclink:v1\n-pivot_root\nstatus\n")
	flat := regexp.MustCompile(`\n {7}`).ReplaceAllString(out, " ")
	for _, want := range []string{
		"the new root's /proc is a symlink (-> \"" + scratch + "\"), where pivot_root must mount the box's /proc once the old root is gone; nothing was changed",
		"\nl[mnt,pid|overlay] > status\n",
	} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "pivot_root(\".\", \".\") = 0") {
		t.Errorf("pivot_root ran:\n%s", out)
	}
	if ents, err := os.ReadDir(scratch); err != nil || len(ents) != 0 {
		t.Errorf("something reached the link's host target %s: %v %v", scratch, ents, err)
	}
}
