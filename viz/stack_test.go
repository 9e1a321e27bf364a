package viz

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives/rootfs"
)

// -update rewrites the golden files; every panel's tests share the flag,
// so register it only if no other test file has.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata/")
	}
}

// checkPanelGolden compares a rendered panel with testdata/file, or
// rewrites the file with -update.
func checkPanelGolden(t *testing.T, file, got string) {
	t.Helper()
	file = filepath.Join("testdata", file)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test ./viz -run %s -update)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the panel:\n%s", file, got)
	}
}

// webStack is the article's box after `touch /test`, `rm /fileB` and
// `echo x >> /etc/motd`, on base, app and web layers.
func webStack(withFiles bool) rootfs.StackSnapshot {
	layer := func(name string, files, dirs, whiteouts int) rootfs.LayerInfo {
		return rootfs.LayerInfo{Name: name, Dir: "/var/lib/stepbox/layers/" + name + "/root", Files: files, Dirs: dirs, Whiteouts: whiteouts}
	}
	snap := rootfs.StackSnapshot{
		Entered: true,
		Merged:  "/run/stepbox/boxes/web/merged",
		Lowers:  []rootfs.LayerInfo{layer("base", 1042, 95, 0), layer("app", 12, 4, 0), layer("web", 3, 2, 1)},
		Upper:   rootfs.LayerInfo{Name: rootfs.UpperName, Dir: "/run/stepbox/boxes/web/upper", Files: 2, Dirs: 1, Whiteouts: 1},
		Changes: []rootfs.Change{
			{Path: "/etc/motd", Kind: rootfs.CopiedUp, Below: "app"},
			{Path: "/fileB", Kind: rootfs.Whiteout, Below: "base"},
			{Path: "/test", Kind: rootfs.Created},
		},
	}
	if withFiles {
		for _, f := range []rootfs.Origin{
			{Path: "/app", Layer: "app", Dir: true}, {Path: "/app/hello", Layer: "app"},
			{Path: "/bin", Layer: "base", Dir: true}, {Path: "/bin/busybox", Layer: "base"}, {Path: "/bin/sh", Layer: "base"},
			{Path: "/etc", Layer: "upper", Dir: true}, {Path: "/etc/hostname", Layer: "base"}, {Path: "/etc/motd", Layer: "upper"},
			{Path: "/etc/web.conf", Layer: "web"}, {Path: "/fileA", Layer: "base"}, {Path: "/test", Layer: "upper"},
		} {
			snap.Files = append(snap.Files, f)
		}
		for i := range 50 {
			snap.Files = append(snap.Files, rootfs.Origin{Path: fmt.Sprintf("/usr/share/zoneinfo/posix/America/Argentina/Buenos_Aires_%02d", i), Layer: "base"})
		}
	}
	return snap
}

// tallStack is a stack of 100 layers, as TestMountOverlayOfHundredLayers mounts.
func tallStack() rootfs.StackSnapshot {
	snap := rootfs.StackSnapshot{Merged: "/run/stepbox/boxes/tall/merged", Upper: rootfs.LayerInfo{Name: rootfs.UpperName, Dir: "/run/stepbox/boxes/tall/upper"}}
	for i := range 100 {
		snap.Lowers = append(snap.Lowers, rootfs.LayerInfo{Name: fmt.Sprintf("l%03d", i), Dir: fmt.Sprintf("/var/lib/stepbox/layers/l%03d/root", i), Files: 2, Dirs: 1})
	}
	return snap
}

func TestStackPanelMatchesGoldenFiles(t *testing.T) {
	for name, snap := range map[string]rootfs.StackSnapshot{"stack": webStack(false), "stack_files": webStack(true), "stack_tall": tallStack()} {
		for _, width := range []int{80, 120} {
			for _, theme := range []string{"plain", "color"} {
				checkPanelGolden(t, fmt.Sprintf("%s_%s_%d.golden", name, theme, width), StackPanel(snap, width, NewTheme(theme)))
			}
		}
	}
}

func TestStackPanelFitsTheWidthAndPlainHasNoEscapes(t *testing.T) {
	long := webStack(true)
	long.Lowers[0].Dir = "/var/lib/stepbox/a/very/long/path/that/will/not/fit/in/any/terminal/we/test/with/layers/base/root"
	for _, snap := range []rootfs.StackSnapshot{webStack(false), webStack(true), tallStack(), long} {
		for _, width := range []int{40, 80, 100, 120, 200} {
			for _, theme := range []string{"plain", "color", "contrast"} {
				out := StackPanel(snap, width, NewTheme(theme))
				for _, line := range strings.Split(out, "\n") {
					if w := lipgloss.Width(line); w > width {
						t.Errorf("%s at %d: a line is %d wide: %q", theme, width, w, line)
					}
				}
				if theme == "plain" && strings.Contains(out, "\x1b") {
					t.Errorf("the plain theme printed an escape code")
				}
			}
		}
	}
}

func TestStackPanelShowsBaseAtTheBottomAndEachChange(t *testing.T) {
	out := StackPanel(webStack(false), 80, NewTheme("plain"))
	order := []string{"merged", "upper", "web", "app", "base"}
	last := -1
	for _, name := range order {
		i := strings.Index(out, "│ "+name+" ")
		if i < last {
			t.Errorf("%s is not below the layers above it:\n%s", name, out)
		}
		last = i
	}
	for _, want := range []string{"+ /test", "~ /etc/motd", "copied up from app", "- /fileB", "whiteout: hides base's", "3 changes"} {
		if !strings.Contains(out, want) {
			t.Errorf("the panel lacks %q:\n%s", want, out)
		}
	}
	tall := StackPanel(tallStack(), 80, NewTheme("plain"))
	if !strings.Contains(tall, "90 more layers (l005 … l094)") || !strings.Contains(tall, "l099") || !strings.Contains(tall, "l000") {
		t.Errorf("a 100-layer stack does not show its top, bottom and how many in between:\n%s", tall)
	}
	files := StackPanel(webStack(true), 80, NewTheme("plain"))
	if !strings.Contains(files, "… 21 more") || !strings.Contains(files, "61 paths in the merged view (upper 3 · web 1 · app 2 · base 55)") {
		t.Errorf("the file list is not capped and counted:\n%s", files)
	}
}

func BenchmarkStackPanel(b *testing.B) {
	snap := webStack(true)
	for i := range 1000 {
		snap.Files = append(snap.Files, rootfs.Origin{Path: fmt.Sprintf("/usr/lib/f%04d", i), Layer: "base"})
	}
	th := NewTheme("color")
	for b.Loop() {
		StackPanel(snap, 120, th)
	}
}
