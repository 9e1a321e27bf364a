package viz

import (
	"fmt"
	"strings"
	"testing"

	"github.com/charmbracelet/lipgloss"

	"stepbox/primitives/rootfs"
)

// mountTables reads the fixtures: a systemd host (PID 1) and a box after
// overlay, dev, proc, sys, tmpfs, a read-only volume and pivot_root.
func mountTables(t testing.TB) (host, box rootfs.MountTable) {
	t.Helper()
	var err error
	if host, err = rootfs.MountsIn("testdata/mounts_proc", 1); err != nil {
		t.Fatal(err)
	}
	if box, err = rootfs.MountsIn("testdata/mounts_proc", 4242); err != nil {
		t.Fatal(err)
	}
	return host, box
}

func TestMountsPanelMatchesGoldenFiles(t *testing.T) {
	host, box := mountTables(t)
	for _, width := range []int{80, 120} {
		for _, theme := range []string{"plain", "color"} {
			th := NewTheme(theme)
			checkPanelGolden(t, fmt.Sprintf("mounts_host_%s_%d.golden", theme, width), MountsPanel(host, width, th))
			checkPanelGolden(t, fmt.Sprintf("mounts_box_%s_%d.golden", theme, width), MountsPanel(box, width, th))
			checkPanelGolden(t, fmt.Sprintf("mounts_diff_%s_%d.golden", theme, width), MountDiffPanel(rootfs.DiffMounts(host, box), width, th))
		}
	}
}

func TestMountsPanelsFitTheWidthAndPlainHasNoEscapes(t *testing.T) {
	host, box := mountTables(t)
	for _, width := range []int{40, 80, 100, 120, 200} {
		for _, theme := range []string{"plain", "color", "contrast"} {
			th := NewTheme(theme)
			for _, out := range []string{MountsPanel(host, width, th), MountsPanel(box, width, th), MountDiffPanel(rootfs.DiffMounts(host, box), width, th)} {
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

func TestMountDiffPanelShowsWhatTheBoxChanged(t *testing.T) {
	host, box := mountTables(t)
	out := MountDiffPanel(rootfs.DiffMounts(host, box), 120, NewTheme("plain"))
	for _, want := range []string{"2 added, 6 removed, 5 changed, 0 the same", "ext4 /dev/vda1 dev 253:1 shared:1", "→ overlay overlay dev 0:52 private", "/srv/www", "/home", "gone from the box"} {
		if !strings.Contains(out, want) {
			t.Errorf("the diff lacks %q:\n%s", want, out)
		}
	}
	same := MountDiffPanel(rootfs.DiffMounts(host, host), 80, NewTheme("plain"))
	if !strings.Contains(same, "the box's mount table is the host's") {
		t.Errorf("an unchanged table:\n%s", same)
	}
	if out := MountsPanel(box, 120, NewTheme("plain")); !strings.Contains(out, "/srv/www[/alice/www]") || !strings.Contains(out, "  /dev/pts") {
		t.Errorf("the box's table does not show binds of subdirs or nesting:\n%s", out)
	}
}

// A table cut where it was read (rootfs.MountsKept) still says how many
// mounts the box holds, and so does a diff that kept some of each kind.
func TestMountPanelsCountTheMountsTheyDidNotKeep(t *testing.T) {
	th := NewTheme("plain")
	tbl := rootfs.MountTable{PID: 4250, Total: 11687}
	for i := range rootfs.MountsKept {
		tbl.Mounts = append(tbl.Mounts, rootfs.Mount{ID: 100 + i, Parent: 99, Point: "/mnt", FSType: "tmpfs", Source: "t", Options: "rw", Root: "/"})
	}
	out := MountsPanel(tbl, 100, th)
	for _, want := range []string{"11687 mounts", fmt.Sprintf("… and %d more mounts", 11687-mountRowsMax)} {
		if !strings.Contains(out, want) {
			t.Errorf("the mounts panel lacks %q", want)
		}
	}
	d := rootfs.MountDiff{Added: tbl.Mounts[:rootfs.MountDiffKept], AddedCount: 11686, Same: 1}
	out = MountDiffPanel(d, 100, th)
	for _, want := range []string{"11686 added", fmt.Sprintf("… %d more", 11686-mountDiffRowsMax)} {
		if !strings.Contains(out, want) {
			t.Errorf("the diff panel lacks %q:\n%s", want, out)
		}
	}
}
