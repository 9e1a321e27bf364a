package layers

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestWalkReportsEachKind(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "x")
	if _, err := s.Put("x", "/etc/motd", "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Del("x", "/etc/issue"); err != nil {
		t.Fatal(err)
	}
	root := s.Root("x")
	mustSymlink(t, "etc/motd", filepath.Join(root, "motd"))
	if err := os.Mkdir(filepath.Join(root, "opaque"), 0o755); err != nil {
		t.Fatal(err)
	}
	// user.overlay.* is what overlayfs reads with -o userxattr; setting it
	// needs no privilege, unlike trusted.*.
	if err := unix.Lsetxattr(filepath.Join(root, "opaque"), "user.overlay.opaque", []byte("y"), 0); err != nil {
		t.Skipf("this filesystem has no user xattrs: %v", err)
	}

	got, err := s.Walk("x")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Path: "/etc", Kind: Dir},
		{Path: "/etc/issue", Kind: Whiteout},
		{Path: "/etc/motd", Kind: File, Size: 5},
		{Path: "/motd", Kind: Symlink, Target: "etc/motd"},
		{Path: "/opaque", Kind: OpaqueDir},
	}
	if len(got) != len(want) {
		t.Fatalf("Walk = %+v, want %d entries", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Path != w.Path || g.Kind != w.Kind || g.Size != w.Size || g.Target != w.Target {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
	if got[2].Mode.Perm() != 0o644 || !got[0].Mode.IsDir() {
		t.Errorf("modes: /etc %v, /etc/motd %v", got[0].Mode, got[2].Mode)
	}
}

func TestWalkUnknownLayerFails(t *testing.T) {
	s := openStore(t)
	if _, err := s.Walk("ghost"); !errors.Is(err, ErrNoLayer) {
		t.Errorf("Walk = %v, want ErrNoLayer", err)
	}
}
