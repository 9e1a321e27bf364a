package infile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A FIFO (whose open(2) would wait for a writer), a device and a
// directory are refused by kind; a regular file, also through a
// symlink, is read; ReadFile refuses one past its bound.
func TestOpenReadsOnlyARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo, file, link := filepath.Join(dir, "fifo"), filepath.Join(dir, "file"), filepath.Join(dir, "link")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("new web\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	for p, kind := range map[string]string{fifo: "FIFO", "/dev/zero": "character device", dir: "directory"} {
		f, err := Open(p)
		var nr *NotRegularError
		if !errors.As(err, &nr) || nr.Kind != kind || !strings.Contains(err.Error(), p) {
			t.Errorf("Open(%s) = %v, want it refused as a %s", p, err, kind)
		}
		if f != nil {
			f.Close()
		}
	}
	for _, p := range []string{file, link} {
		if b, err := ReadFile(p, 100); err != nil || string(b) != "new web\n" {
			t.Errorf("ReadFile(%s) = %q, %v", p, b, err)
		}
	}
	if _, err := ReadFile(file, 3); err == nil || !strings.Contains(err.Error(), "bigger than 3 bytes") {
		t.Errorf("ReadFile past its bound: %v", err)
	}
}
