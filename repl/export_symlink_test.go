package repl

import (
	"archive/tar"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The script `export script` writes makes its directories, nodes and
// mounts on the host's side, in a fresh overlay of the image's layers:
// where a layer has the symlink d -> SCRATCH (a host directory), a box
// that replaced /d with a directory and mounted a tmpfs on /d/sub gets a
// script that stops, naming /d and its link, and makes nothing in
// SCRATCH. A box whose mounts (proc, dev, a volume, the masks, one of its
// own) cross no symlink is rebuilt as before.
func TestExportScriptMakesNothingThroughAnImagesSymlink(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	scratch, vol := filepath.Join(dir, "scratch"), filepath.Join(dir, "vol")
	for _, d := range []string{scratch, vol} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(vol, "v"), []byte("from the volume\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := layerArchive(t, filepath.Join(dir, "sym.tar"), "test/sym:v1", tarOf(t,
		&tar.Header{Name: "d", Typeflag: tar.TypeSymlink, Linkname: scratch},
		&tar.Header{Name: "e/", Typeflag: tar.TypeDir, Mode: 0o755}), nil)
	run := func(file string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", append([]string{file}, args...)...)
		cmd.Env = append(os.Environ(), "BOXDIR="+file+".box")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	box := func(name, volumes, mounts string) string {
		return "new " + name + "\nunshare mnt pid\nmount overlay test/sym:v1 base\n" + volumes + "pivot_root\nmount proc\nmount dev\n" + mounts +
			"export script " + filepath.Join(dir, name+".sh") + "\n"
	}
	out, code := runStepbox(t, filepath.Join(dir, "state"), "image load "+archive+"\n"+
		box("evil", "", "exec sh -c 'rm /d && mkdir -p /d/sub && mount -t tmpfs t /d/sub'\n")+
		box("good", "mount bind "+vol+" /vol:ro\n", "mount mask\nexec sh -c 'mount -t tmpfs t /e'\n"), "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}

	evil := filepath.Join(dir, "evil.sh")
	got, err := run(evil, "/bin/true")
	if err == nil || !strings.Contains(got, "/d/sub: /d in the box's root is a symlink (-> "+scratch+")") {
		b, _ := os.ReadFile(evil)
		t.Errorf("sh %s: %v, want it to stop naming /d and its link:\n%s\nthe script:\n%s", evil, err, got, b)
	}
	if made, _ := os.ReadDir(scratch); len(made) > 0 {
		t.Errorf("the script made %s in %s, through the image's symlink /d", made[0].Name(), scratch)
	}

	good := filepath.Join(dir, "good.sh")
	got, err = run(good, "sh", "-c", "cat /vol/v; grep -c ' /e ' /proc/self/mountinfo; ls /dev/null; grep ' /proc/sys ' /proc/self/mountinfo")
	if err != nil {
		b, _ := os.ReadFile(good)
		t.Fatalf("sh %s: %v\n%s\nthe script:\n%s", good, err, got, b)
	}
	for _, want := range []string{"from the volume\n", "1\n", "/dev/null\n", " /proc/sys ro,"} {
		if !strings.Contains(got, want) {
			t.Errorf("inside the rebuilt box, output lacks %q:\n%s", want, got)
		}
	}
}
