package viz

import (
	"strings"
	"testing"

	"stepbox/primitives"
	"stepbox/primitives/probe"
	"stepbox/primitives/step"
)

func TestEscapeLeavesNoControlCharacterForTheTerminal(t *testing.T) {
	for in, want := range map[string]string{
		"plain/file.txt":    "plain/file.txt",
		"café ünïcode 日本":   "café ünïcode 日本",
		"\x1b]0;owned\a":    `\x1b]0;owned\x07`,
		"\x1b[2Jclear":      `\x1b[2Jclear`,
		"a\nb\rc\td":        `a\nb\rc\td`,
		"nul\x00del\x7f":    `nul\x00del\x7f`,
		"c1\u009b2J":        `c1\u009b2J`,
		"bidi\u202eexe.txt": `bidi\u202eexe.txt`,
		"bad\xffutf8":       `bad\xffutf8`,
		"back\\slash":       `back\\slash`,
		`name\x1b`:          `name\\x1b`,
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every panel escapes what the box named: a file in the upper dir, a
// mount path, a process name, a file an image's layer adds.
func TestPanelsEscapeWhatTheBoxNamed(t *testing.T) {
	evil := "x\x1b]0;pwned\x07\x1b[2J"
	for name, out := range map[string]string{
		"truncate":       truncate(evil, 80),
		"truncateMiddle": truncateMiddle("/upper/"+evil+strings.Repeat("y", 100), 30),
		"table":          NewTheme("plain").renderTable([]string{"name"}, [][]string{{evil}}, nil, 80),
		"image show": ImageShowPanel("test/evil:v1", []ImageLayerRow{{Layer: evil, CreatedBy: evil, Added: []string{"/" + evil},
			Modified: []string{"/" + evil}, Removed: []string{"/" + evil}}}, 8, 80, NewTheme("plain")),
		"explain": StepPanel(&step.Step{Command: "cgroup new", Notes: []string{"left /sys/fs/cgroup/" + evil}}, 80, NewTheme("plain")),
	} {
		if strings.ContainsAny(out, "\x1b\x07") {
			t.Errorf("%s printed a control character raw: %q", name, out)
		}
	}
}

// A name the box chose that holds the text \x1b (a backslash, x, 1, b)
// and one that holds an ESC are shown apart in every panel, the live
// view too, each escaped once: the first as \\x1b, the second as \x1b,
// never \\x1b (a second escape on the way to the screen: renderTable,
// truncate, fit, esc, LivePage).
func TestPanelsShowANameTheBoxChoseEscapedOnceAndApart(t *testing.T) {
	plain := NewTheme("plain")
	panels := map[string]func(v string) string{
		"boxes (hostname)": func(v string) string {
			rows := someBoxes()
			rows[0].Hostname = v
			return BoxesPanel(rows, 200, plain)
		},
		"ps (a command line)": func(v string) string {
			root := webProcesses()
			root.Children[1].Children[0].Cmdline = "top " + v
			return ProcessPanel(root, 200, plain)
		},
		"image show (a layer's file, what made it)": func(v string) string {
			return ImageShowPanel("img", []ImageLayerRow{{Index: 0, Layer: "sha256:" + v, CreatedBy: "RUN touch /" + v, Added: []string{"/" + v}}}, 8, 200, plain)
		},
		"images (platform)": func(v string) string {
			return ImagesPanel([]ImageRow{{Name: "img", Digest: "sha256:0123456789abcdef", Platform: "linux/" + v, Layers: 1, Size: 10, Source: "/tmp/img.tar"}}, 200, plain)
		},
		"stack (a file in the upper dir)": func(v string) string {
			snap := webStack(false)
			snap.Changes[2].Path = "/" + v
			return StackPanel(snap, 200, plain)
		},
		"cgroup (a child the box made)": func(v string) string {
			snap := unifiedSnapshot()
			snap.Parent.Children[0].Name = "web-" + v
			return CgroupPanel(snap, 200, plain)
		},
		"explain (a note)": func(v string) string {
			return StepPanel(&step.Step{Command: "cgroup new", Notes: []string{"left /sys/fs/cgroup/" + v}}, 200, plain)
		},
		"layers (a layer's name, its image)": func(v string) string {
			rows := someLayers()
			rows[2].Name, rows[2].Image = "app"+v, "img"+v
			return LayersPanel(rows, 200, plain)
		},
		"ns (the box's name)": func(v string) string {
			s := webNamespaces()
			s.Box = "web" + v
			return NamespacePanel(s, 200, plain)
		},
		"probe (the evidence, the box's name)": func(v string) string {
			return ProbePanel("web"+v, []primitives.ProbeResult{{Result: probe.Result{Name: "mount", State: probe.Open, Evidence: "saw /" + v}, Closes: "harden"}}, 200, plain)
		},
		"live page (hostname)": func(v string) string {
			s := liveState()
			s.Boxes[0].Hostname = v
			return LivePage(s)
		},
	}
	for name, panel := range panels {
		text, esc := panel(`n\x1bm`), panel("n\x1bm")
		if !strings.Contains(text, `n\\x1bm`) {
			t.Errorf("%s: a name holding the text \\x1b is not shown as n\\\\x1bm:\n%s", name, text)
		}
		if !strings.Contains(esc, `n\x1bm`) || strings.Contains(esc, `\\x1b`) {
			t.Errorf("%s: a name holding an ESC is not shown as n\\x1bm, escaped once:\n%s", name, esc)
		}
	}
}

// Escape runs on every cell of every panel: the common case (nothing to
// escape) must cost next to nothing.
func BenchmarkEscape(b *testing.B) {
	for name, s := range map[string]string{
		"plain":   "/var/lib/stepbox/layers/base/root/usr/share/zoneinfo/Europe/Paris",
		"unicode": "/srv/données/日本語/café",
		"hostile": "/t\x1b]0;pwned\x07\x1b[2J\u202efdp.exe",
	} {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				Escape(s)
			}
		})
	}
}
