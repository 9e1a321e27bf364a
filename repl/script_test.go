package repl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// returnsWithin runs do and fails t if it has not returned after d: the
// bug it guards against is a session that never answers, so this is a
// bound on a hang, never a measure of speed.
func returnsWithin[T any](t *testing.T, d time.Duration, what string, do func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- do() }()
	select {
	case v := <-done:
		return v
	case <-time.After(d):
		t.Fatalf("%s: no answer after %s", what, d)
	}
	panic("unreachable")
}

// `source` of what is not a regular file (a FIFO blocks open(2) for a
// writer, /dev/zero never ends) is refused at once, naming the command,
// the file and what it takes.
func TestSourceRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for path, kind := range map[string]string{fifo: "FIFO", "/dev/zero": "character device", dir: "directory"} {
		sh, out := plainShell()
		err := returnsWithin(t, time.Minute, "source "+path, func() error { return sh.Execute(context.Background(), "source "+path) })
		if err == nil {
			t.Fatalf("source %s: accepted\n%s", path, out)
		}
		msg := err.Error()
		for _, want := range []string{"source", path, kind, "not a regular file", "give a script"} {
			if !strings.Contains(msg, want) {
				t.Errorf("source %s: %q does not say %q", path, msg, want)
			}
		}
	}
}

// A file that has no newline where a script would have one is not read
// to its end: the script stops at its first line, whatever '-' says.
func TestSourceStopsAtALineWithNoEnd(t *testing.T) {
	sh, out := plainShell()
	name := filepath.Join(t.TempDir(), "endless.sb")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("-exec echo ")
	// Sparse: 1 TiB of NULs on no disk, and no newline in it.
	if err := f.Truncate(1 << 40); err != nil {
		t.Skip(err)
	}
	f.Close()
	err = returnsWithin(t, 5*time.Minute, "source "+name, func() error { return sh.Execute(context.Background(), "source "+name) })
	var se *ScriptError
	if !errors.As(err, &se) || se.Line != 1 || !strings.Contains(err.Error(), "no end of line") {
		t.Fatalf("source of a file with no newline stopped with %v, want a stop at line 1 saying it has no end of line\n%.500s", err, out)
	}
}

// Ctrl-C stops a script waiting for its next line on a pipe (`stepbox
// run -` fed by a writer that writes nothing more), as it stops a command.
func TestCtrlCStopsAScriptWaitingForItsNextLine(t *testing.T) {
	sh, _ := plainShell()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	w.WriteString("# a comment, then nothing more for now\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Ctrl-C
	err = returnsWithin(t, time.Minute, "a cancelled script on a silent pipe", func() error { return sh.RunScript(ctx, r, "-") })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("the script ended with %v, want it stopped by the cancel", err)
	}
}

// `stepbox run` of a FIFO or /dev/zero fails at once with what it takes,
// and `stepbox lesson check` of a FIFO named like a lesson file too.
func TestRunAndLessonCheckRefuseWhatIsNotARegularFile(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.md")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", fifo}, {"run", "/dev/zero"}, {"lesson", "check", fifo}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := exec.CommandContext(ctx, stepboxBinary(t), append([]string{"--state-dir", filepath.Join(dir, "state")}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		late := ctx.Err() != nil
		cancel()
		if late {
			t.Fatalf("stepbox %s: no answer within a minute", strings.Join(args, " "))
		}
		if err == nil || !strings.Contains(out.String(), "not a regular file") || !strings.Contains(out.String(), args[len(args)-1]) {
			t.Errorf("stepbox %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
	}
}
