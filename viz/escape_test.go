package viz

import (
	"strings"
	"testing"

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
		"back\\slash":       "back\\slash",
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
