package repl

import (
	"archive/tar"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// hostileEnvImage writes an image of one layer holding the directory
// in (as the box will see it) whose Env sets FOO and makes any dynamic
// loader that starts with it speak: LD_PRELOAD names a missing library
// (the loader says it cannot preload it), LD_DEBUG_OUTPUT a file in in
// (the loader writes it, wherever it runs), and returns the reference.
func hostileEnvImage(t *testing.T, dir, in string) (archive, ref string) {
	t.Helper()
	ref = "stepbox/hostile-env:1"
	var hdrs []*tar.Header
	for p := strings.TrimPrefix(in, "/"); p != "."; p = filepath.Dir(p) {
		hdrs = append([]*tar.Header{{Name: p + "/", Typeflag: tar.TypeDir}}, hdrs...)
	}
	archive = layerArchive(t, filepath.Join(dir, refFile(ref)), ref, tarOf(t, hdrs...), func(c *v1.Config) {
		c.Env = []string{"PATH=/bin:/usr/bin", "FOO=from-the-image",
			"LD_PRELOAD=/no-such-preload-ut27.so", "LD_DEBUG=libs", "LD_DEBUG_OUTPUT=" + filepath.Join(in, "ld-debug")}
	})
	return archive, ref
}

// An image's Env reaches a command only after it joined the box. `enter`
// starts a stepbox process on the host's side, which the host's loader
// runs: it starts with stepbox's own environment and hands the image's
// to the command at its execve, inside the box; `probe` runs stepbox
// itself in the box (through the host's loader when stepbox is dynamic),
// with stepbox's environment too. Neither loader reads the image's
// LD_PRELOAD or LD_DEBUG_OUTPUT: the host's directory, and the box's
// copy of it, stay empty, and nothing says a preload failed. The
// entered command still sees the image's FOO, as exec's does.
func TestEnterAndProbeStartWithoutTheImagesEnv(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "loader-output")
	if err := os.Mkdir(in, 0o755); err != nil {
		t.Fatal(err)
	}
	archive, ref := hostileEnvImage(t, dir, in)
	script := strings.Join([]string{
		"image load " + archive,
		"new e",
		"unshare all",
		"mount overlay base " + ref,
		"mount proc",
		"pivot_root",
		`enter -- sh -c 'echo "[entered $FOO]"'`,
		"probe proc_root",
		`exec sh -c 'echo "[exec $FOO]"; ls -A ` + in + `; echo "[listed]"'`,
	}, "\n") + "\n"
	out := runStepboxWithin(t, 2*time.Minute, filepath.Join(dir, "state"), script)
	for _, want := range []string{"[entered from-the-image]", "[exec from-the-image]", "[listed]"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the output:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cannot be preloaded") || strings.Contains(out, "no-such-preload") {
		t.Errorf("a loader read the image's LD_PRELOAD:\n%s", out)
	}
	// The box's copy of the directory, listed between the two markers.
	if _, after, ok := strings.Cut(out, "[exec from-the-image]"); ok {
		if listed, _, _ := strings.Cut(after, "[listed]"); strings.TrimSpace(listed) != "" {
			t.Errorf("the probe's loader wrote the image's LD_DEBUG_OUTPUT in the box (so the image's LD_PRELOAD would load there too): %s\n%s", strings.TrimSpace(listed), out)
		}
	}
	host, err := os.ReadDir(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range host {
		b, _ := os.ReadFile(filepath.Join(in, e.Name()))
		t.Errorf("a loader on the host's side took the image's Env: it wrote %s:\n%.600s", e.Name(), b)
	}
}
