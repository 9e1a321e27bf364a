package repl

import (
	"strings"
	"testing"
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
	note := stdinNote([]string{"cat"})
	for _, w := range []string{"stdin is /dev/null", "`sh` is the interactive way"} {
		if !strings.Contains(note, w) {
			t.Errorf("the note on exec cat does not say %q: %s", w, note)
		}
	}
}
