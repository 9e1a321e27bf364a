package step

import "testing"

// EscapeControls, what draws text holding escaped values, leaves
// Escape's text as it is (a value is escaped once) and shows the controls
// of any other text escaped, its backslashes as they are.
func TestEscapeControlsLeavesEscapedTextAndEscapesControls(t *testing.T) {
	for _, s := range escapeCases {
		if e := Escape(s); EscapeControls(e) != e {
			t.Errorf("EscapeControls(Escape(%q)) = %q, not %q", s, EscapeControls(e), e)
		}
	}
	for in, want := range map[string]string{
		`a\b`:            `a\b`,
		"a\x1b]0;t\a\\b": `a\x1b]0;t\x07\b`,
		"l1\nl2":         `l1\nl2`,
	} {
		if got := EscapeControls(in); got != want {
			t.Errorf("EscapeControls(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzEscapeControls: whatever a box names, what draws its escaped name
// draws it as Escape wrote it.
func FuzzEscapeControls(f *testing.F) {
	for _, s := range escapeCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if e := Escape(s); EscapeControls(e) != e {
			t.Fatalf("EscapeControls(Escape(%q)) = %q, not %q", s, EscapeControls(e), e)
		}
	})
}
