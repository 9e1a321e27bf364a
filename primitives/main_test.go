package primitives

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"stepbox/primitives/hoststate"
)

// TestMain lets the test binary serve as a box process: a box re-executes
// a copy of /proc/self/exe, which here is this binary; started in a box
// with envAttack or envDumpable it is a probe (integrity_test.go), with
// envHunt a process after the box's probe (box_probe_trace_test.go). At the end it asserts that
// the suite left no stepbox process behind.
func TestMain(m *testing.M) {
	if Reexec() {
		return
	}
	if pids := os.Getenv(envAttack); pids != "" {
		os.Exit(attack(pids))
	}
	if arg := os.Getenv(envHunt); arg != "" {
		os.Exit(hunt(arg))
	}
	if names := os.Getenv(envSquat); names != "" {
		os.Exit(squat(names))
	}
	if os.Getenv(envDumpable) != "" {
		v, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
		if err != nil {
			fmt.Println("prctl(PR_GET_DUMPABLE):", err)
			os.Exit(1)
		}
		fmt.Println(v)
		os.Exit(0)
	}
	code := m.Run()
	if left := hoststate.StepboxProcesses(); len(left) > 0 && code == 0 {
		os.Stderr.WriteString("stepbox processes left behind by the tests:\n")
		for _, p := range left {
			os.Stderr.WriteString("  " + p + "\n")
		}
		code = 1
	}
	os.Exit(code)
}

// needRoot skips a test that needs root, unless STEPBOX_MUST_WORK=1 makes
// every skip a failure (CI).
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("STEPBOX_MUST_WORK") == "1" {
		t.Fatal("this test needs root, and STEPBOX_MUST_WORK=1 forbids skipping it")
	}
	t.Skip("needs root")
}

// newTestSession opens a session under a temporary state directory and
// checks, at cleanup, that the host is as it was.
func newTestSession(t *testing.T) *Session {
	t.Helper()
	before, err := hoststate.Capture()
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSession(traversableDirs(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("teardown: %v", err)
		}
		after, err := hoststate.Capture()
		if err != nil {
			t.Fatal(err)
		}
		if d := hoststate.Diff(before, after); d != "" {
			t.Errorf("the host changed:\n%s", d)
		}
	})
	return s
}

// traversableDirs are a session's temporary state dirs in a directory a
// box's mapped root may search (go test makes it 0700): as root, a box
// whose user namespace came first mounts its overlay as that host uid,
// which must reach the layers (userns_overlay.go).
func traversableDirs(t testing.TB) Dirs {
	t.Helper()
	d := Dirs{Run: t.TempDir(), Lib: t.TempDir()}
	if err := os.Chmod(filepath.Dir(d.Run), 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}
