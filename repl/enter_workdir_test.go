package repl

import (
	"archive/tar"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// workingDirImages writes two images for `enter`'s WorkingDir: test/wd,
// whose WorkingDir /srv/app its layer lacks, and test/evil, whose
// WorkingDir /link/made leads through a symlink to outside, a directory
// of the host's.
func workingDirImages(t *testing.T, dir, outside string) (wd, evil string) {
	t.Helper()
	archive := func(ref, workdir string, hdrs ...*tar.Header) string {
		return layerArchive(t, filepath.Join(dir, refFile(ref)), ref, tarOf(t, hdrs...), func(c *v1.Config) { c.WorkingDir = workdir })
	}
	wd = archive("test/wd:v1", "/srv/app", &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	evil = archive("test/evil:v1", "/link/made", &tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside})
	return wd, evil
}

// `enter` starts its command in the image's WorkingDir, as exec and
// `docker exec` do, and `explain enter` says so: the enter process
// chdirs there after joining the box's mount namespace. A WorkingDir the
// layers lack is made, as exec makes it; one that leads through a
// symlink out of the box is refused, naming enter and the path, and
// nothing is made on the host.
func TestEnterStartsInTheImagesWorkingDir(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	outside := filepath.Join(dir, "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	wd, evil := workingDirImages(t, dir, outside)
	out, code := runStepbox(t, filepath.Join(dir, "state"), "image load "+wd+"\nimage load "+evil+"\n"+
		"new a\nunshare mnt pid\nmount overlay test/wd:v1 base\npivot_root\nexplain enter -- pwd\n"+
		"enter -- sh -c 'echo \"[entered $(pwd)]\"'\nenter -- stat -c '[made %A %u]' /srv/app\n"+
		"new b\nunshare mnt pid\nmount overlay test/evil:v1 base\npivot_root\n-enter -- pwd\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{`chdir("/srv/app")`, "[entered /srv/app]", "[made drwxr-xr-x 0]",
		"enter pwd: the image's WorkingDir /link/made"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "made")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("enter made %s on the host: %v", filepath.Join(outside, "made"), err)
	}
}

// On a terminal, the shell `enter` starts is in the image's WorkingDir.
func TestEnterOnATerminalStartsInTheImagesWorkingDir(t *testing.T) {
	enterOnATerminal(t, "pivot_root", "pivot", []string{"#"}, "[in /srv/app]")
}

// enterOnATerminal builds a box of the WorkingDir image whose root is
// changed by rootStep (its prompt shows short), enters it on a terminal,
// waits for entered, runs a shell line that prints its directory and
// /etc/issue, and waits for each of want.
func enterOnATerminal(t *testing.T, rootStep, short string, entered []string, want ...string) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	wd, _ := workingDirImages(t, dir, filepath.Join(dir, "outside"))
	p := newTmuxPane(t)
	p.startBox(filepath.Join(dir, "state"))
	prompt := "web[uts,mnt,pid|" + short + "] ▸"
	for _, l := range []struct{ cmd, prompt string }{
		{"image load " + wd, "test/wd:v1"},
		{"mount overlay test/wd:v1 base", "web[uts,mnt,pid|overlay] ▸"},
		{rootStep, prompt},
		{"enter", ""},
	} {
		p.mark()
		p.line(l.cmd)
		if l.prompt != "" {
			p.waitFor(l.prompt)
		}
	}
	p.waitFor(entered...)
	p.line(`echo "[in $(pwd)]"; cat /etc/issue`)
	for _, w := range want {
		p.waitFor(w)
	}
	p.mark()
	p.line("exit")
	p.waitFor(prompt)
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}

// `enter` into a box that changed its root with chroot runs in that
// root, as exec does and as `nsenter --root` and `docker exec` do: after
// setns(CLONE_NEWNS), which leaves the command at its mount namespace's
// root (the host's files, for a chroot), the enter process takes the
// box's root from /proc/PID/root. The command, its files and the image's
// WorkingDir are the box's.
func TestEnterIntoAChrootBoxRunsInItsRoot(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	wd, _ := workingDirImages(t, dir, filepath.Join(dir, "outside"))
	out, code := runStepbox(t, filepath.Join(dir, "state"), "image load "+wd+"\n"+
		"layer new only\nlayer put only /only-in-the-box here\n"+
		"new a\nunshare mnt pid\nmount overlay base only\nchroot\nexplain enter -- ls /\n"+
		"enter -- pwd\nenter -- ls /\nenter -- cat /etc/issue\nexec ls /\n"+
		"new b\nunshare mnt pid\nmount overlay test/wd:v1 base\nchroot\n-enter -- pwd\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	lines := strings.Split(out, "\n")
	count := func(line string) int {
		n := 0
		for _, l := range lines {
			if strings.TrimSpace(l) == line {
				n++
			}
		}
		return n
	}
	for _, want := range []string{`fchdir(`, `</proc/`, `/root>)`, `chroot(".")`, "--root", "stepbox base: this /etc/issue comes from layer base"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Once from enter, once from exec: both list the overlay's root.
	if n := count("only-in-the-box"); n != 2 {
		t.Errorf("%d lines name the overlay's only-in-the-box, want 2 (enter -- ls /, exec ls /):\n%s", n, out)
	}
	if count("/srv/app") != 1 {
		t.Errorf("enter -- pwd in a chroot box did not print the image's WorkingDir /srv/app:\n%s", out)
	}
}

// On a terminal, the shell `enter` starts in a chroot box is the box's,
// in the box's root and the image's WorkingDir.
func TestEnterOnATerminalIntoAChrootBoxRunsInItsRoot(t *testing.T) {
	enterOnATerminal(t, "chroot", "chroot", []string{"pid namespaces and root, joined from the host as nsenter --root does", "#"},
		"[in /srv/app]", "this /etc/issue comes from layer base")
}
