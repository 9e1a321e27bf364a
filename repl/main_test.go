package repl

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"stepbox/primitives"
	"stepbox/primitives/hoststate"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestMain lets the test binary serve as a box process for in-process
// shells, and asserts at the end that nothing of stepbox is left running.
func TestMain(m *testing.M) {
	if primitives.Reexec() {
		return
	}
	if len(os.Args) > 2 && os.Args[1] == holderEntry {
		os.Exit(holderMain(os.Args[2:]))
	}
	flag.Parse()
	code := m.Run()
	if left := hoststate.StepboxProcesses(); len(left) > 0 && code == 0 {
		os.Stderr.WriteString("stepbox processes left behind by the tests:\n")
		for _, p := range left {
			os.Stderr.WriteString("  " + p + "\n")
		}
		code = 1
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

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

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// stepboxBinary builds the stepbox binary once, into a directory any user
// may read (the rootless tests run it as uid 65534).
func stepboxBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		// Where no Go toolchain exists (the VM test), the binary is given.
		if p := os.Getenv("STEPBOX_BIN"); p != "" {
			binPath = p
			return
		}
		binDir, buildErr = os.MkdirTemp("", "stepbox-bin-")
		if buildErr != nil {
			return
		}
		os.Chmod(binDir, 0o755)
		binPath = filepath.Join(binDir, "stepbox")
		out, err := exec.Command("go", "build", "-o", binPath, "stepbox").CombinedOutput()
		if err != nil {
			buildErr = &buildError{out: string(out), err: err}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return "go build: " + e.err.Error() + "\n" + e.out }

// hostUnchanged captures the host's state and checks it again at cleanup.
func hostUnchanged(t *testing.T) {
	t.Helper()
	before, err := hoststate.Capture()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		after, err := hoststate.Capture()
		if err != nil {
			t.Fatal(err)
		}
		if d := hoststate.Diff(before, after); d != "" {
			t.Errorf("the host changed:\n%s", d)
		}
	})
}

// searchableTempDir is tb.TempDir() in a directory others may search (go
// test makes it 0700): as root, a box whose user namespace came before
// its overlay mounts it as its own host uid, which must reach the state
// dirs and layers (primitives/userns_overlay.go); stepbox opens its own
// state dirs to it, never a directory above them.
func searchableTempDir(tb testing.TB) string {
	tb.Helper()
	d := tb.TempDir()
	if err := os.Chmod(filepath.Dir(d), 0o711); err != nil {
		tb.Fatal(err)
	}
	return d
}
