package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// tree lays out files (path → content) under a fresh directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, text := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetectTellsTheModeFromTheFilesEachVersionHas(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  Mode
	}{
		{"unified", map[string]string{"cgroup.controllers": "cpu memory pids\n", "cgroup.procs": "1\n"}, Unified},
		{"legacy", map[string]string{"memory/tasks": "1\n", "pids/tasks": "1\n", "cpu/tasks": "1\n"}, Legacy},
		{"hybrid", map[string]string{"memory/tasks": "1\n", "pids/tasks": "1\n", "unified/cgroup.controllers": "\n"}, Hybrid},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Detect(tree(t, c.files))
			if err != nil || got != c.want {
				t.Errorf("Detect = %v, %v; want %v", got, err, c.want)
			}
			if got.Version() != map[Mode]int{Unified: 2, Legacy: 1, Hybrid: 1}[c.want] {
				t.Errorf("%v.Version() = %d", got, got.Version())
			}
		})
	}
	if _, err := Detect(tree(t, map[string]string{"README": "no cgroups here"})); !errors.Is(err, ErrNoCgroups) {
		t.Errorf("Detect on an empty tree: err = %v, want ErrNoCgroups", err)
	}
}
