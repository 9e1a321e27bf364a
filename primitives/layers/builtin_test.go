package layers

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func buildMotd(text string) func(root string) error {
	return func(root string) error {
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(root, "etc/motd"), []byte(text), 0o644)
	}
}

func installMotd(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Install(Layer{Name: "motd", Description: "d", Recipe: "motd/1"}, buildMotd("hi\n")); err != nil {
		t.Fatal(err)
	}
}

func TestInstallMakesVerifiableBuiltin(t *testing.T) {
	s := openStore(t)
	installMotd(t, s)
	l, err := s.Get("motd")
	if err != nil {
		t.Fatal(err)
	}
	if !l.Builtin || l.Recipe != "motd/1" || !strings.HasPrefix(l.Digest, "sha256:") {
		t.Errorf("layer = %+v", l)
	}
	if err := s.Verify("motd", "motd/1"); err != nil {
		t.Errorf("Verify = %v", err)
	}
	if got := strings.Join(storeNames(t, s), " "); got != ".lock motd" {
		t.Errorf("store holds %q, want no temp dir left", got)
	}
}

func TestVerifyDetectsDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, s *Store)
		want   error
	}{
		{"file changed in place", func(t *testing.T, s *Store) {
			mustWrite(t, filepath.Join(s.Root("motd"), "etc/motd"), "ho\n")
		}, ErrDamaged},
		{"file removed", func(t *testing.T, s *Store) {
			mustRemove(t, filepath.Join(s.Root("motd"), "etc/motd"))
		}, ErrDamaged},
		{"file added", func(t *testing.T, s *Store) {
			mustWrite(t, filepath.Join(s.Root("motd"), "extra"), "")
		}, ErrDamaged},
		{"mode changed", func(t *testing.T, s *Store) {
			if err := os.Chmod(filepath.Join(s.Root("motd"), "etc/motd"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ErrDamaged},
		{"file rewritten with the same size and its mtime put back", func(t *testing.T, s *Store) {
			p := filepath.Join(s.Root("motd"), "etc/motd")
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, p, "HI\n")
			if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
				t.Fatal(err)
			}
		}, ErrDamaged},
		{"layer.json corrupt", func(t *testing.T, s *Store) {
			mustWrite(t, filepath.Join(s.Dir, "motd/layer.json"), "{not json")
		}, ErrDamaged},
		{"layer.json missing", func(t *testing.T, s *Store) {
			mustRemove(t, filepath.Join(s.Dir, "motd/layer.json"))
		}, ErrDamaged},
		{"layer gone", func(t *testing.T, s *Store) {
			if err := os.RemoveAll(filepath.Join(s.Dir, "motd")); err != nil {
				t.Fatal(err)
			}
		}, ErrNoLayer},
	}
	// "stamped": a Verify has run before the damage, so the layer carries
	// a metadata stamp and Verify takes its fast path when nothing changed.
	for _, c := range cases {
		for _, stamped := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stamped=%v", c.name, stamped), func(t *testing.T) {
				s := openStore(t)
				installMotd(t, s)
				if stamped {
					if err := s.Verify("motd", "motd/1"); err != nil {
						t.Fatal(err)
					}
					if b, err := os.ReadFile(filepath.Join(s.Dir, "motd", "stamp")); err != nil || !strings.Contains(string(b), " meta:") {
						t.Fatalf("after Verify: stamp %q, %v", b, err)
					}
				}
				c.damage(t, s)
				if err := s.Verify("motd", "motd/1"); !errors.Is(err, c.want) {
					t.Fatalf("Verify = %v, want %v", err, c.want)
				}
				installMotd(t, s)
				if err := s.Verify("motd", "motd/1"); err != nil {
					t.Errorf("after Install: Verify = %v", err)
				}
				if b, err := os.ReadFile(filepath.Join(s.Root("motd"), "etc/motd")); err != nil || string(b) != "hi\n" {
					t.Errorf("after Install: motd = %q, %v", b, err)
				}
				if got := strings.Join(storeNames(t, s), " "); got != ".lock motd" {
					t.Errorf("store holds %q, want the old copy gone", got)
				}
			})
		}
	}
}

func TestVerifyWantsCurrentRecipe(t *testing.T) {
	s := openStore(t)
	installMotd(t, s)
	if err := s.Verify("motd", "motd/2"); !errors.Is(err, ErrDamaged) {
		t.Errorf("Verify with a newer recipe = %v, want ErrDamaged", err)
	}
}

func TestInstallLeavesIntactLayerAlone(t *testing.T) {
	s := openStore(t)
	installMotd(t, s)
	before, _ := s.Get("motd")
	built := false
	err := s.Install(Layer{Name: "motd", Recipe: "motd/1"}, func(string) error { built = true; return nil })
	if err != nil || built {
		t.Errorf("Install on an intact layer: err %v, built %v; want nothing done", err, built)
	}
	after, _ := s.Get("motd")
	if !after.Created.Equal(before.Created) {
		t.Errorf("layer rebuilt: created %v -> %v", before.Created, after.Created)
	}
}

func TestInstallNeverReplacesUsersLayer(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "motd")
	if _, err := s.Put("motd", "/mine", "x"); err != nil {
		t.Fatal(err)
	}
	err := s.Install(Layer{Name: "motd", Recipe: "motd/1"}, buildMotd("hi\n"))
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "layer rm motd") {
		t.Errorf("Install = %v, want ErrExists telling how to free the name", err)
	}
	if _, err := os.Stat(filepath.Join(s.Root("motd"), "mine")); err != nil {
		t.Errorf("user's file gone: %v", err)
	}
}

func TestInstallFailedBuildLeavesNothing(t *testing.T) {
	s := openStore(t)
	err := s.Install(Layer{Name: "motd", Recipe: "motd/1"}, func(root string) error {
		if err := os.Mkdir(root, 0o755); err != nil {
			return err
		}
		return errors.New("disk on fire")
	})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("Install = %v, want the build error", err)
	}
	if got := strings.Join(storeNames(t, s), " "); got != ".lock" {
		t.Errorf("store holds %q after a failed build", got)
	}
}

func TestSweepRemovesLeftoversOfCrashedSessions(t *testing.T) {
	s := openStore(t)
	newLayer(t, s, "keep")
	for _, d := range []string{".new-x-1", ".build-base-2", ".rm-y-3"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d, "root"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sweep(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(storeNames(t, s), " "); got != ".lock keep" {
		t.Errorf("store holds %q after Sweep, want .lock keep", got)
	}
}

func mustWrite(t *testing.T, p, text string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, p string) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
}
