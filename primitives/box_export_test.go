package primitives

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"stepbox/primitives/export"
)

// A bundle under a directory the box's root may not search (go test's
// 0700) is named with what to do; once others may search it, or for a
// box without a user namespace, nothing is said.
func TestBundleOutOfReachNamesTheDirectoryTheBoxsRootCannotSearch(t *testing.T) {
	e := export.Box{Namespaces: []string{"mnt", "user"},
		UIDMap: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1234567, Size: 65536}},
		GIDMap: []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1234567, Size: 65536}}}
	dir := t.TempDir()
	closed := filepath.Dir(dir)
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "bundle")
	if got := BundleOutOfReach(bundle, e); !strings.Contains(got, "may not search "+closed+" (mode 0700") || !strings.Contains(got, "chmod o+x "+closed) {
		t.Errorf("BundleOutOfReach(%s) = %q: want %s named", bundle, got, closed)
	}
	if err := os.Chmod(closed, 0o711); err != nil {
		t.Fatal(err)
	}
	if got := BundleOutOfReach(bundle, e); got != "" {
		t.Errorf("BundleOutOfReach(%s) under 0711 directories = %q, want nothing", bundle, got)
	}
	if err := os.Chmod(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	e.Namespaces = []string{"mnt"}
	if got := BundleOutOfReach(bundle, e); got != "" {
		t.Errorf("BundleOutOfReach of a box without a user namespace = %q, want nothing", got)
	}
}
