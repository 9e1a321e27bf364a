package lessons

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"stepbox/primitives/export"
	"stepbox/primitives/rootfs"
)

func judgeOne(t *testing.T, line string, s *State) Result {
	t.Helper()
	f := strings.Fields(line)
	c, err := LookupCheck(f[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := c.validate(f[1:]); err != nil {
		t.Fatal(err)
	}
	return c.Run(s, f[1:])
}

func TestImageStackedReadsTheLayersOrigins(t *testing.T) {
	b := fresh("app").unshare("mnt", "pid")
	s := &State{Current: "app", Boxes: []BoxState{b}}
	if r := judgeOne(t, "image-stacked", s); r.Finding != "no-overlay" {
		t.Fatalf("no overlay: %+v", r)
	}
	s.Boxes[0].Stack = &rootfs.StackSnapshot{Lowers: []rootfs.LayerInfo{{Name: "base"}, {Name: "motd"}}}
	if r := judgeOne(t, "image-stacked", s); r.Finding != "no-image" {
		t.Fatalf("plain layers: %+v", r)
	}
	s.Boxes[0].Stack.Lowers = []rootfs.LayerInfo{
		{Name: "demo.0", Origin: "stepbox/demo:latest #0: COPY base /"},
		{Name: "demo.1", Origin: "stepbox/demo:latest #1: RUN rm /etc/issue", Whiteouts: 1},
	}
	for line, want := range map[string]string{
		"image-stacked":                     "",
		"image-stacked stepbox/demo":        "",
		"image-stacked stepbox/demo:latest": "",
		"image-stacked alpine":              "no-image",
		"image-stacked stepbox/demo:v2":     "no-image",
	} {
		r := judgeOne(t, line, s)
		if r.Finding != want || r.Pass != (want == "") {
			t.Errorf("%s: %+v, want finding %q", line, r, want)
		}
		if r.Pass && !strings.Contains(r.Saw, "2 layer(s) of stepbox/demo:latest, holding 1 whiteout") {
			t.Errorf("%s saw %q", line, r.Saw)
		}
	}
}

// The bundle is written by export.WriteBundle, as `export bundle` writes
// it, and judged against the box it describes.
func TestBundleExportedComparesTheBundleWithTheBox(t *testing.T) {
	b := fresh("app").unshare("mnt", "pid", "uts").named("app")
	b.Dir = t.TempDir()
	b.Stack = &rootfs.StackSnapshot{Changes: []rootfs.Change{{Path: "/app", Kind: rootfs.Created, Dir: true}, {Path: "/app/note", Kind: rootfs.Created}}}
	s := &State{Current: "app", Boxes: []BoxState{b}}
	if r := judgeOne(t, "bundle-exported bundle", s); r.Finding != "no-bundle" {
		t.Fatalf("before export: %+v", r)
	}

	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "app", "note"), []byte("hello from /app\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	desc := export.Box{Name: "app", Namespaces: []string{"uts", "mnt", "pid"}, Hostname: "app", Root: root, Args: []string{"/app/hello.sh"},
		Mounts: []export.Mount{{Target: "/proc", Type: "proc", Source: "proc"}}}
	if _, _, err := export.WriteBundle(filepath.Join(b.Dir, "bundle"), desc); err != nil {
		t.Fatal(err)
	}
	if r := judgeOne(t, "bundle-exported bundle", s); !r.Pass || !strings.Contains(r.Saw, `process "/app/hello.sh"`) {
		t.Fatalf("after export: %+v", r)
	}
	if r := judgeOne(t, "bundle-exported other", s); r.Finding != "no-bundle" {
		t.Errorf("another dir: %+v", r)
	}

	// The box moves on; the bundle no longer describes it.
	renamed := *s
	renamed.Boxes = []BoxState{s.Boxes[0].named("web")}
	if r := judgeOne(t, "bundle-exported bundle", &renamed); r.Finding != "bundle-differs" || !strings.Contains(r.Saw, `"web"`) {
		t.Errorf("hostname changed: %+v", r)
	}
	netted := *s
	netted.Boxes = []BoxState{s.Boxes[0].unshare("net")}
	if r := judgeOne(t, "bundle-exported bundle", &netted); r.Finding != "bundle-differs" || !strings.Contains(r.Saw, "net namespace") {
		t.Errorf("a new namespace: %+v", r)
	}
	wrote := s.Boxes[0]
	wrote.Stack = &rootfs.StackSnapshot{Changes: append(append([]rootfs.Change(nil), b.Stack.Changes...), rootfs.Change{Path: "/app/later", Kind: rootfs.Created})}
	if r := judgeOne(t, "bundle-exported bundle", &State{Current: "app", Boxes: []BoxState{wrote}}); r.Finding != "bundle-differs" || !strings.Contains(r.Saw, "/app/later") {
		t.Errorf("a file made after the export: %+v", r)
	}
}

func TestBundleExportedTakesADirUnderTheBoxsStateDir(t *testing.T) {
	c, err := LookupCheck("bundle-exported")
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"/tmp/bundle", "../bundle", "a/../../b"} {
		if err := c.validate([]string{arg}); err == nil || !strings.Contains(err.Error(), "relative to the box's state dir") {
			t.Errorf("%s: %v", arg, err)
		}
	}
	if err := c.validate([]string{"bundle"}); err != nil {
		t.Error(err)
	}
}
