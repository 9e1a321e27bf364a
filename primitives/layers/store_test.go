package layers

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "layers"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newLayer(t *testing.T, s *Store, name string) {
	t.Helper()
	if _, err := s.New(name, "test layer "+name); err != nil {
		t.Fatal(err)
	}
}

// storeNames lists what is in the store dir, temp dirs and the lock file included.
func storeNames(t *testing.T, s *Store) []string {
	t.Helper()
	des, err := os.ReadDir(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestOpenMakesPrivateStoreDir(t *testing.T) {
	s := openStore(t)
	fi, err := os.Stat(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("store dir mode = %v, want 0700", fi.Mode().Perm())
	}
}

func TestNewMakesEmptyLayerWithRootAndLayerJSON(t *testing.T) {
	s := openStore(t)
	st, err := s.New("web", "my web files")
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Root("web"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("root = %v, want a 0755 dir", fi.Mode())
	}
	des, _ := os.ReadDir(s.Root("web"))
	if len(des) != 0 {
		t.Errorf("new layer holds %d entries, want none", len(des))
	}
	b, err := os.ReadFile(filepath.Join(s.Dir, "web", "layer.json"))
	if err != nil {
		t.Fatal(err)
	}
	var l Layer
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if l.Name != "web" || l.Description != "my web files" || l.Builtin || l.Locked || l.Created.IsZero() {
		t.Errorf("layer.json = %+v", l)
	}
	last := st.Calls[len(st.Calls)-1]
	if !strings.HasPrefix(last.Syscall, "renameat2(") || !strings.HasSuffix(last.Syscall, `/web", RENAME_NOREPLACE)`) || last.Result != "0" {
		t.Errorf("last call = %v, want the renameat2 into place", last)
	}
	if got := strings.Join(storeNames(t, s), " "); got != ".lock web" {
		t.Errorf("store holds %q, want only the lock and the layer", got)
	}
}

func TestNewRejectsBadNamesSayingWhatIsAllowed(t *testing.T) {
	for _, name := range []string{"", "a/b", "a b", "..", ".", ".hidden", "-x", "_x", "ä", "x;rm", strings.Repeat("a", 33)} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			_, err := s.New(name, "")
			if !errors.Is(err, ErrBadName) {
				t.Fatalf("New(%q) = %v, want ErrBadName", name, err)
			}
			msg := err.Error()
			for _, want := range []string{"layer new", `"` + name + `"`, "letters, digits"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
			if names := storeNames(t, s); len(names) != 0 {
				t.Errorf("store holds %v after a refused New", names)
			}
		})
	}
}

func TestNewAcceptsLongestName(t *testing.T) {
	s := openStore(t)
	name := "A" + strings.Repeat("b.-_9", 6) + "z"
	newLayer(t, s, name)
	if _, err := s.Get(name); err != nil {
		t.Fatal(err)
	}
}

func TestNewRefusesTakenName(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "web")
	if err := os.WriteFile(filepath.Join(s.Root("web"), "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := s.New("web", "again")
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second New = %v, want ErrExists", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root("web"), "keep")); err != nil {
		t.Errorf("the first layer's file is gone: %v", err)
	}
}

func TestGetUnknownLayerListsTheLayersThereAre(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "web")
	newLayer(t, s, "db")
	_, err := s.Get("nope")
	if !errors.Is(err, ErrNoLayer) {
		t.Fatalf("Get = %v, want ErrNoLayer", err)
	}
	if !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "db, web") {
		t.Errorf("error %q should name the layer and list db, web", err)
	}
}

func TestListPutsBuiltinsFirstThenSortsByName(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "zeta")
	newLayer(t, s, "alpha")
	for _, name := range []string{"zz", "base"} {
		if err := s.Install(Layer{Name: name, Recipe: "r"}, func(root string) error { return os.Mkdir(root, 0o755) }); err != nil {
			t.Fatal(err)
		}
	}
	// Left by a crash: no layer.json. Not a layer.
	if err := os.Mkdir(filepath.Join(s.Dir, "half"), 0o700); err != nil {
		t.Fatal(err)
	}
	all, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range all {
		names = append(names, l.Name)
		if l.Root != s.Root(l.Name) {
			t.Errorf("%s: Root = %q, want %q", l.Name, l.Root, s.Root(l.Name))
		}
	}
	if got := strings.Join(names, " "); got != "base zz alpha zeta" {
		t.Errorf("List = %q, want builtins first: base zz alpha zeta", got)
	}
}

func TestLockedLayerRefusesChangesNamingTheBox(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "web")
	if _, err := s.Put("web", "/index.html", "v1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Lock("web", "box1"); err != nil {
		t.Fatal(err)
	}
	// A second box mounting it changes nothing: the first one is named.
	if err := s.Lock("web", "box2"); err != nil {
		t.Fatal(err)
	}
	changes := map[string]func() error{
		"layer put": func() error { _, err := s.Put("web", "/index.html", "v2"); return err },
		"layer del": func() error { _, err := s.Del("web", "/index.html"); return err },
		"layer rm":  func() error { _, err := s.Remove("web"); return err },
	}
	for cmd, change := range changes {
		err := change()
		if !errors.Is(err, ErrReadOnly) {
			t.Fatalf("%s on a locked layer = %v, want ErrReadOnly", cmd, err)
		}
		for _, want := range []string{cmd, `"box1"`, "layer new"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(s.Root("web"), "index.html"))
	if err != nil || string(b) != "v1" {
		t.Errorf("index.html = %q, %v; want v1, untouched", b, err)
	}
	l, _ := s.Get("web")
	if !l.Locked || l.LockedBy != "box1" {
		t.Errorf("layer = %+v, want locked by box1", l)
	}
}

func TestBuiltinLayerRefusesChanges(t *testing.T) {
	s := openStore(t)
	if err := s.Install(Layer{Name: "base", Recipe: "r"}, func(root string) error { return os.Mkdir(root, 0o755) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put("base", "/etc/motd", "x"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Put on builtin = %v, want ErrReadOnly", err)
	}
	if _, err := s.Del("base", "/etc/motd"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Del on builtin = %v, want ErrReadOnly", err)
	}
	if _, err := s.Remove("base"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Remove of builtin = %v, want ErrReadOnly", err)
	}
	if err := s.Verify("base", "r"); err != nil {
		t.Errorf("builtin changed: %v", err)
	}
}

func TestRemoveDeletesLayerAndItsFiles(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "web")
	if _, err := s.Put("web", "/a/b/c", "x"); err != nil {
		t.Fatal(err)
	}
	st, err := s.Remove("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(storeNames(t, s), " "); got != ".lock" {
		t.Errorf("store holds %q after Remove, want only the lock", got)
	}
	if _, err := s.Get("web"); !errors.Is(err, ErrNoLayer) {
		t.Errorf("Get after Remove = %v, want ErrNoLayer", err)
	}
	if len(st.Shell) != 1 || !strings.HasPrefix(st.Shell[0], "rm -r ") {
		t.Errorf("shell = %q, want rm -r", st.Shell)
	}
}

func TestRemoveUnknownLayerFails(t *testing.T) {
	s := openStore(t)
	if _, err := s.Remove("ghost"); !errors.Is(err, ErrNoLayer) || !strings.Contains(err.Error(), "layer rm") {
		t.Errorf("Remove = %v, want a layer rm error wrapping ErrNoLayer", err)
	}
}

// A layer a box once mounted may be removed once no box can be using it
// (InUse says so); while one may be, `layer rm` says which; changing its
// content stays refused, and a store without InUse never removes it.
func TestRemoveOfAOnceMountedLayerAsksInUse(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "web")
	if err := s.Lock("web", "box1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove("web"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Remove without InUse = %v, want ErrReadOnly", err)
	}
	s.InUse = func(name string) error { return errors.New("box box1 has it in its overlay") }
	for _, try := range []func() error{
		func() error { _, err := s.Remove("web"); return err },
		func() error { _, err := s.PlanRemove("web"); return err },
	} {
		if err := try(); !errors.Is(err, ErrReadOnly) || !strings.Contains(err.Error(), "box box1 has it in its overlay") {
			t.Fatalf("Remove while in use = %v, want ErrReadOnly and the reason", err)
		}
	}
	s.InUse = func(string) error { return nil }
	if _, err := s.Put("web", "/x", "y"); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Put on a once-mounted layer = %v, want ErrReadOnly", err)
	}
	if _, err := s.PlanRemove("web"); err != nil {
		t.Fatalf("PlanRemove once unused: %v", err)
	}
	if _, err := s.Remove("web"); err != nil {
		t.Fatalf("Remove once unused: %v", err)
	}
	if _, err := s.Get("web"); !errors.Is(err, ErrNoLayer) {
		t.Errorf("Get after Remove = %v, want ErrNoLayer", err)
	}
}
