package primitives

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// exec finds a command by looking in the box's root: an error that is
// not about the name (the root cannot be reached, the host is short of
// memory, a lookup raced) is said as it is, never as "command not found"
// for a program that is there (ut25 F8).
func TestExecLookupSaysWhatFailedRatherThanNotFound(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "echo"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"PATH=/usr/bin:/bin"}
	if p, err := lookPath(root, "echo", env); err != nil || p != "/bin/echo" {
		t.Fatalf("lookPath(echo) = %q, %v; want /bin/echo", p, err)
	}
	if _, err := lookPath(root, "nosuch", env); err == nil || !strings.Contains(err.Error(), "command not found") {
		t.Errorf("lookPath(nosuch) = %v, want command not found", err)
	}
	gone := filepath.Join(root, "gone") // as /proc/PID/root of a process that has ended
	_, err := lookPath(gone, "echo", env)
	if err == nil || strings.Contains(err.Error(), "not found") {
		t.Fatalf("lookPath in a root that cannot be opened = %v, want the open's error, not \"not found\"", err)
	}
	if !strings.Contains(err.Error(), gone) || !strings.Contains(err.Error(), unix.ENOENT.Error()) {
		t.Errorf("the error %q does not name the root it could not open and why", err)
	}
}
