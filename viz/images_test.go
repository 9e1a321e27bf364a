package viz

import (
	"strings"
	"testing"
)

// The "+ files" column counts what the layer stack counts: files, not the
// directories that hold them; the directories are listed with a slash.
func TestImageShowCountsFilesAsTheStackDoes(t *testing.T) {
	rows := []ImageLayerRow{{Index: 1, Layer: "demo.1", Size: 289, CreatedBy: "RUN mkdir /app",
		Added: []string{"/app/", "/app/hello.sh"}, Modified: []string{"/etc/motd"}, Removed: []string{"/etc/issue"}}}
	out := ImageShowPanel("stepbox/demo", rows, 10, 100, NewTheme("plain"))
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "demo.1") && strings.Contains(l, "RUN mkdir") {
			row = l
		}
	}
	cells := strings.FieldsFunc(row, func(r rune) bool { return r == '│' })
	if len(cells) < 7 || strings.TrimSpace(cells[4]) != "1" {
		t.Errorf("the layer's row %q: want 1 file added (/app/hello.sh), not the directory too", row)
	}
	if !strings.Contains(out, "+ /app/\n") || !strings.Contains(out, "+ /app/hello.sh") {
		t.Errorf("the added paths should list /app/ with its slash and /app/hello.sh:\n%s", out)
	}
}
