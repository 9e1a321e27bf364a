package repl

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// A terminal of 0×0 (script(1) reading a pipe makes one; a window can be
// resized to it) is laid out as 80×24: go-prompt divided by its width at
// the first Enter and the session crashed (ut35 G4). Both at the start
// and after a resize to 0×0 mid-session, lines run and exit leaves with 0.
func TestPromptOnAZeroSizedTerminal(t *testing.T) {
	needRoot(t)
	t.Run("from the start", func(t *testing.T) { zeroSizedSession(t, pty.Winsize{}) })
	t.Run("resized mid-session", func(t *testing.T) { zeroSizedSession(t, pty.Winsize{Rows: 30, Cols: 100}) })
}

// zeroSizedSession runs a session on a terminal of size start, resized
// to 0×0 after its first line.
func zeroSizedSession(t *testing.T, start pty.Winsize) {
	dir := t.TempDir()
	cmd := exec.Command(stepboxBinary(t), "--state-dir", dir)
	cmd.Env = append(cmd.Environ(), "COLUMNS=", "LINES=")
	f, err := pty.StartWithSize(cmd, &start)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run := childStepbox(t, cmd, dir, unix.SIGHUP)
	var mu sync.Mutex
	var seen bytes.Buffer
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			mu.Lock()
			seen.Write(buf[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	from := 0
	waitFor := func(text string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mu.Lock()
			s := seen.String()
			mu.Unlock()
			if i := strings.Index(s[from:], text); i >= 0 {
				from += i + len(text)
				return
			}
			if time.Now().After(deadline) || run.reaped(0) {
				t.Fatalf("no %q on the terminal:\n%s", text, s)
			}
		}
	}
	line := func(l, want string) {
		t.Helper()
		if _, err := f.Write([]byte(l + "\r")); err != nil {
			t.Fatal(err)
		}
		waitFor(want)
	}
	// Not the prompt: go-prompt drew none at 0 columns.
	waitFor("Ctrl-D leaves.")
	line("new a", "a[] ▸")
	if err := pty.Setsize(f, &pty.Winsize{}); err != nil {
		t.Fatal(err)
	}
	// go-prompt's Input reads the size as it starts, not on SIGWINCH: the
	// line typed at the resized prompt is the next one's.
	line("new b", "box b (id")
	line("new c", "c[] ▸")
	if _, err := f.Write([]byte("exit\r")); err != nil {
		t.Fatal(err)
	}
	if !run.reaped(endWithin) {
		t.Fatalf("stepbox did not leave after exit:\n%s", seen.String())
	}
	cmd.Wait()
	mu.Lock()
	out := seen.String()
	mu.Unlock()
	if code := cmd.ProcessState.ExitCode(); code != 0 || strings.Contains(out, "panic") {
		t.Fatalf("exit code %d on a 0×0 terminal:\n%s", code, out)
	}
}
