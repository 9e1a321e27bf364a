package viz

import (
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"

	"stepbox/primitives/rootfs"
)

func init() {
	// The panels after each cgroup step, in the golden files of
	// TestPanelsMatchGoldenFiles at 80 and 120 columns.
	panels["cgroup_step_new"] = func(w int, t Theme) string { return CgroupStepPanel(unifiedSnapshot(), CgroupStep{}, w, t) }
	panels["cgroup_step_limit"] = func(w int, t Theme) string {
		return CgroupStepPanel(hybridSnapshot(), CgroupStep{Resource: "pids"}, w, t)
	}
	panels["cgroup_step_attach"] = func(w int, t Theme) string {
		return CgroupStepPanel(hybridSnapshot(), CgroupStep{Attached: true}, w, t)
	}
	panels["stack_step_tall"] = func(w int, t Theme) string { return StackStepPanel(tallStack(), w, t) }
	panels["layers_state"] = func(w int, t Theme) string {
		t.State = "/var/lib/stepbox-class"
		rows := someLayers()
		for i := range rows {
			rows[i].Path = strings.Replace(rows[i].Path, "/var/lib/stepbox", "/var/lib/stepbox-class/lib", 1)
		}
		return LayersPanel(rows, w, t)
	}
}

// After a cgroup step the panel shows the box's own cgroup — not the
// whole tree, nor all of /proc/PID/cgroup — and names `cgroup show`.
func TestCgroupStepShowsWhatItChangedInAFewLines(t *testing.T) {
	for _, what := range []CgroupStep{{}, {Resource: "pids"}, {Attached: true}} {
		out := ansi.Strip(CgroupStepPanel(hybridSnapshot(), what, 80, NewTheme("color")))
		lines := strings.Split(out, "\n")
		if len(lines) > 9 {
			t.Errorf("%+v: %d lines, more than a step's share of the screen:\n%s", what, len(lines), out)
		}
		for _, want := range []string{"cgroup web-0123456789ab · box web · procs 4250 4251 4260", "20 / 20", "`cgroup show`"} {
			if !strings.Contains(out, want) {
				t.Errorf("%+v: no %q in\n%s", what, want, out)
			}
		}
		if strings.Contains(out, "db-89abcdef0123") || strings.Contains(out, "stepbox-4242  procs") {
			t.Errorf("%+v: the panel shows cgroups the step did not touch:\n%s", what, out)
		}
		if got := strings.Contains(out, "/proc/4250/cgroup"); got != what.Attached {
			t.Errorf("%+v: /proc/PID/cgroup shown: %v, want %v:\n%s", what, got, what.Attached, out)
		}
	}
}

// Tables write the state dir as $STATE and keep a layer's "holds" whole,
// folded onto more lines, never cut.
func TestLayersTableKeepsWhatALayerHoldsAndShortensTheStateDir(t *testing.T) {
	th := NewTheme("plain")
	th.State = "/tmp/stepbox-test-123456789/state"
	rows := someLayers()
	for i := range rows {
		rows[i].Path = th.State + "/lib/layers/" + rows[i].Name + "/root"
	}
	for _, width := range []int{80, 120} {
		out := LayersPanel(rows, width, th)
		if strings.Contains(out, "…") && !strings.Contains(out, "$STATE/…/") {
			t.Errorf("width %d: something was cut mid-word:\n%s", width, out)
		}
		words := strings.Join(strings.Fields(strings.NewReplacer("│", " ").Replace(out)), " ")
		for _, r := range rows {
			for _, w := range strings.Fields(r.Description) {
				if !strings.Contains(words, w) {
					t.Errorf("width %d: %q of %q is missing:\n%s", width, w, r.Description, out)
				}
			}
		}
		table, note, _ := strings.Cut(out, "┘\n")
		if !strings.Contains(table, "$STATE/") || strings.Contains(table, th.State) {
			t.Errorf("width %d: the state dir is not written as $STATE:\n%s", width, out)
		}
		if !strings.Contains(unfolded(note), "$STATE is "+th.State) {
			t.Errorf("width %d: no note says what $STATE is:\n%s", width, out)
		}
	}
}

// A path too long for its place loses whole names from its middle.
func TestLongPathsLoseWholeNamesNotLetters(t *testing.T) {
	p := "/run/stepbox/sessions/4242-170593/boxes/web/overlay/merged"
	for w := 12; w < len(p); w++ {
		got := truncateMiddle(p, w)
		if ansi.StringWidth(got) > w {
			t.Errorf("%d: %q is wider", w, got)
		}
		for _, name := range strings.Split(strings.ReplaceAll(got, "…", ""), "/") {
			if name != "" && !strings.Contains("/"+p+"/", "/"+name+"/") {
				t.Errorf("%d: %q holds a cut name %q", w, got, name)
			}
		}
	}
}

// Shortening a shortened path again leaves out more names, never a
// second "…" beside the first.
func TestShorteningAgainKeepsOneEllipsis(t *testing.T) {
	p := "$STATE/run/sessions/24540-77492/boxes/web/overlay/merged"
	once := truncateMiddle(p, 40)
	for w := 20; w < 40; w++ {
		if got := truncateMiddle(once, w); strings.Count(got, "…") != 1 {
			t.Errorf("%d: %q", w, got)
		}
	}
}

func unfolded(s string) string { return strings.Join(strings.Fields(s), " ") }

// At 60 columns the mount diff folds what a mount is under itself: no
// word of a mount's options or of its note is cut off.
func TestMountDiffFoldsInsteadOfCutting(t *testing.T) {
	host, box := mountTables(t)
	out := MountDiffPanel(rootfs.DiffMounts(host, box), 60, NewTheme("plain"))
	for _, l := range strings.Split(out, "\n") {
		if strings.HasSuffix(l, "…") || ansi.StringWidth(l) > 60 {
			t.Errorf("cut or too wide: %q\n%s", l, out)
		}
	}
}

// A tall stack after `mount overlay` shows its top and bottom two and
// names `stack`; `stack` itself draws five at each end, and the count
// between them is the layers left out.
func TestTallStackAfterTheStepFitsTheScreen(t *testing.T) {
	step := StackStepPanel(tallStack(), 80, NewTheme("plain"))
	if n := strings.Count(step, "\n") + 1; n > 20 {
		t.Errorf("%d lines after mount overlay:\n%s", n, step)
	}
	for _, want := range []string{"l099", "l098", "96 more layers (l002 … l097)", "l001", "l000", "`stack` draws every layer"} {
		if !strings.Contains(step, want) {
			t.Errorf("no %q in\n%s", want, step)
		}
	}
	full := StackPanel(tallStack(), 80, NewTheme("plain"))
	if !strings.Contains(full, "90 more layers (l005 … l094)") || strings.Contains(full, "│ l005 ") || !strings.Contains(full, "│ l004 ") {
		t.Errorf("the full stack does not show five layers at each end:\n%s", full)
	}
}
