package repl

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Only the null device counts as output nobody sees: not another
// character device, a pipe or a file.
func TestOnlyTheNullDeviceIsOutputNobodySees(t *testing.T) {
	open := func(path string) *os.File {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for _, c := range []struct {
		name string
		f    *os.File
		want bool
	}{
		{"/dev/null", open("/dev/null"), true},
		{"/dev/zero", open("/dev/zero"), false},
		{"a pipe", w, false},
		{"a file", open(filepath.Join(t.TempDir(), "out")), false},
	} {
		if got := nullDevice(c.f); got != c.want {
			t.Errorf("nullDevice(%s) = %v, want %v", c.name, got, c.want)
		}
	}
}

// A script whose output goes to /dev/null (its steps draw no panel then)
// runs, fails and tears down as one whose output is read: the same exit
// status, the same errors on stderr, nothing left on the host.
func TestAScriptWithItsOutputToDevNullEndsAsOneWhoseOutputIsRead(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	for _, tail := range []string{"exit\n", "-exec false\nexec sh -c 'exit 3'\nexec echo never\n"} {
		var errs [2]string
		var codes [2]int
		for i, toNull := range []bool{false, true} {
			dir := t.TempDir()
			cmd := exec.Command(stepboxBinary(t), "--state-dir", dir, "run", "-")
			cmd.Stdin = strings.NewReader(teardownScript + tail)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if toNull {
				null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer null.Close()
				cmd.Stdout = null
			}
			cmd.WaitDelay = 5 * time.Second
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); ok {
				codes[i] = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			errs[i] = strings.ReplaceAll(stderr.String(), dir, "$STATE")
			if !toNull && !strings.Contains(stdout.String(), "cgroup ") {
				t.Fatalf("the script read through a pipe drew no cgroup panel:\n%s", stdout.String())
			}
			assertNoSessions(t, dir)
		}
		if codes[0] != codes[1] || errs[0] != errs[1] {
			t.Errorf("script ending %q: read, exit %d and stderr:\n%s\nto /dev/null, exit %d and stderr:\n%s", tail, codes[0], errs[0], codes[1], errs[1])
		}
	}
}
