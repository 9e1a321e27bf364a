package repl

import (
	"strings"
	"testing"

	"stepbox/primitives/images"
)

func TestExecSaysWhichTextToolsReadTheirEmptyStdin(t *testing.T) {
	for line, want := range map[string]bool{
		"cat":                      true,
		"cat -":                    true,
		"cat -n":                   true,
		"/bin/cat /etc/hostname":   false,
		"head -n 5":                true,
		"head -n5 /etc/passwd":     false,
		"head -n 5 /etc/passwd":    false,
		"grep root":                true,
		"grep root /etc/passwd":    false,
		"grep -e root":             true,
		"grep -e root /etc/passwd": false,
		"sed -n 1p":                true,
		"sed 1p /etc/passwd":       false,
		"tr a-z A-Z":               true,
		"sort -k 2 -t :":           true,
		"wc -l -- /etc/passwd":     false,
		"ls":                       false,
		"hostname":                 false,
	} {
		if got := readsStdin(strings.Fields(line)); got != want {
			t.Errorf("readsStdin(%q) = %v, want %v", line, got, want)
		}
	}
	note := stdinNote("exec", []string{"cat"})
	for _, w := range []string{"stdin is /dev/null", "`sh` is the interactive way"} {
		if !strings.Contains(note, w) {
			t.Errorf("the note on exec cat does not say %q: %s", w, note)
		}
	}
}

// A layer's line with a long note folds at words to the width.
func TestImageProgressFoldsItsNoteAtWords(t *testing.T) {
	sh, out := plainShell()
	note := "every file is here, but the owners of 293 entries (such as 65534:65534) were not kept: rootless, chown(2) to another uid needs CAP_CHOWN"
	sh.progress()(images.Event{Index: 1, Count: 2, Digest: "sha256:0123456789abcdef", State: images.Unpacked, Layer: "demo.0", Note: note})
	got := out.String()
	for _, l := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
		if w := len([]rune(l)); w > 80 {
			t.Errorf("line of %d columns: %q", w, l)
		}
	}
	if !strings.Contains(strings.Join(strings.Fields(got), " "), note) {
		t.Errorf("the note is broken inside a word:\n%s", got)
	}
}
