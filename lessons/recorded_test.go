package lessons

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// States recorded on the real kernel (cgroup v1, Linux 6.18) after each
// of lessons 1, 3 and 5 had run its solution: the checks judge them again
// without root.
func recorded(t *testing.T, name string) *State {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func TestChecksJudgeStatesRecordedOnTheKernel(t *testing.T) {
	for _, tc := range []struct {
		file, check, want string // want: the finding, "" for a pass
	}{
		{"after-lesson-1.json", "own-namespace uts ipc net mnt pid", ""},
		{"after-lesson-1.json", "two-hostnames", ""},
		{"after-lesson-1.json", "container-process", ""},
		{"after-lesson-1.json", "pivoted", ""},
		{"after-lesson-1.json", "own-proc", ""},
		{"after-lesson-1.json", "chrooted", "pivoted"},
		{"after-lesson-1.json", "union", "one-layer"},
		{"after-lesson-1.json", "cgroup-made", "no-cgroup"},
		{"after-lesson-1.json", "user-namespace", "shares-user"},
		{"after-lesson-3.json", "union", ""},
		{"after-lesson-3.json", "shadowed", ""},
		{"after-lesson-3.json", "shadowed base motd", ""},
		{"after-lesson-3.json", "shadowed motd base", "wrong-order"},
		{"after-lesson-3.json", "upper-created /test", ""},
		{"after-lesson-3.json", "upper-created /from-host", "not-created"},
		{"after-lesson-3.json", "copied-up", ""},
		{"after-lesson-3.json", "whiteout", ""},
		{"after-lesson-3.json", "shared-base", ""},
		{"after-lesson-3.json", "dev-sys", "no-dev"},
		{"after-lesson-5.json", "cgroup-attached", ""},
		{"after-lesson-5.json", "pids-limit", "no-refusal"}, // web lifted its limit after; db, current, never hit its own
		{"after-lesson-5.json", "memory-limit", ""},
		{"after-lesson-5.json", "cpu-limit", ""},
		{"after-lesson-5.json", "sibling-cgroups", ""},
		{"after-lesson-5.json", "cgroup-root", "shares-cgroupns"},
		{"after-lesson-5.json", "overlay-mounted", "shares-mnt"},
	} {
		f := strings.Fields(tc.check)
		c, err := LookupCheck(f[0])
		if err != nil {
			t.Fatal(err)
		}
		r := c.Run(recorded(t, tc.file), f[1:])
		got := r.Finding
		if r.Pass {
			got = ""
		}
		if got != tc.want {
			t.Errorf("%s on %s: finding %q (%s), want %q", tc.check, tc.file, got, r.Saw, tc.want)
		}
	}
}
