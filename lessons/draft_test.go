package lessons

import (
	"os"
	"path/filepath"
	"testing"
)

// A lesson waiting in draft/ for the commands it runs is held to the
// course's format already: it parses and lints.
func TestDraftLessonsLint(t *testing.T) {
	files, err := filepath.Glob("draft/*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		l, err := Parse(f, string(src))
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Lint(); err != nil {
			t.Errorf("%s (%s): %v", f, l.PaceOf(0), err)
		}
	}
}
