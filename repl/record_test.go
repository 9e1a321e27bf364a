package repl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRecorderWritesAsciicastV2(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.cast")
	r, err := StartRecording(path, 120, 40)
	if err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("one\ntwo\r\n"))
	é := []byte("é")
	r.Write(append([]byte("caf"), é[0])) // a character cut in two by the writer
	r.Write(é[1:])
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var h castHeader
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.Version != 2 || h.Width != 120 || h.Height != 40 || h.Env["TERM"] == "" {
		t.Fatalf("header %s: %v", lines[0], err)
	}
	var texts []string
	for _, l := range lines[1:] {
		var ev []any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || len(ev) != 3 || ev[1] != "o" {
			t.Fatalf("event %s: %v", l, err)
		}
		texts = append(texts, ev[2].(string))
	}
	if got := strings.Join(texts, "|"); got != "one\r\ntwo\r\n|caf|é" {
		t.Fatalf("events %q", got)
	}
}

func TestRecordingAFileThatCannotBeMadeFailsAtOnce(t *testing.T) {
	if _, err := StartRecording(filepath.Join(t.TempDir(), "no", "such", "dir.cast"), 80, 24); err == nil || !strings.Contains(err.Error(), "--record") {
		t.Fatalf("error %v", err)
	}
}
