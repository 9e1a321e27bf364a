package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// boundFDs lowers this test process's open-file limit to what it has open
// and 256 more, until the test ends: a `source` that recursed with no
// bound (the bug these tests guard against) then fails at EMFILE after a
// few hundred levels instead of holding ~19,000 files and GBs of memory.
func boundFDs(t *testing.T) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	bound := old
	bound.Cur = min(old.Cur, uint64(len(openFDs(t))+256))
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &bound); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// writeScripts writes each name's text into dir and returns dir.
func writeScripts(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// sourceIn runs `source FILE` in sh, bounded in time and descriptors.
func sourceIn(t *testing.T, sh *Shell, file string) error {
	t.Helper()
	boundFDs(t)
	return returnsWithin(t, time.Minute, "source "+file, func() error { return sh.Execute(context.Background(), "source "+file) })
}

// A file that sources itself, here under another name (a symlink: the
// same file, by device and inode), is refused at its first nested
// `source`: the script stops there as at any failed line, the error
// names the loop, and nothing is left open or recorded.
func TestSourceOfItselfIsRefusedAtOnce(t *testing.T) {
	dir := writeScripts(t, map[string]string{"self.sb": "help exit\nsource " + "again.sb\nhelp never\n"})
	if err := os.Symlink("self.sb", filepath.Join(dir, "again.sb")); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	sh, out := plainShell()
	fds := len(openFDs(t))
	err := sourceIn(t, sh, "self.sb")
	var se *ScriptError
	if !errors.As(err, &se) || se.File != "self.sb" || se.Line != 2 {
		t.Fatalf("source of a file sourcing itself ended with %.2000v, want a stop at self.sb line 2\n%.2000s", err, out)
	}
	msg := err.Error()
	for _, want := range []string{"source", "again.sb is already being run", "self.sb → again.sb", "cannot source itself"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error %.2000q does not say %q", msg, want)
		}
	}
	if strings.Count(out.String(), "source again.sb") != 1 || strings.Contains(out.String(), "never") {
		t.Errorf("the loop was not stopped at its first nested source, or the script went on:\n%.3000s", out)
	}
	if len(sh.scripts) != 0 || len(sh.history) != 0 {
		t.Errorf("after the refusal the session still reads %d scripts and recorded %q", len(sh.scripts), sh.history)
	}
	if n := len(openFDs(t)); n != fds {
		t.Errorf("%d files open before the source, %d after", fds, n)
	}
	// The session goes on as before.
	if err := sh.Execute(context.Background(), "source self.sb"); err == nil || !strings.Contains(err.Error(), "already being run") {
		t.Errorf("a second source of the same file: %v", err)
	}
}

// A sources B, which sources A: refused at B's source of A, naming both.
func TestSourceLoopThroughAnotherFileIsRefusedNamingBoth(t *testing.T) {
	dir := writeScripts(t, map[string]string{"a.sb": "source b.sb\n", "b.sb": "# b\nsource ./a.sb\n"})
	t.Chdir(dir)
	sh, out := plainShell()
	err := sourceIn(t, sh, "a.sb")
	if err == nil {
		t.Fatalf("a loop of two files was sourced to its end\n%.2000s", out)
	}
	msg := err.Error()
	for _, want := range []string{"a.sb:1 → b.sb:2: stopped: source: ./a.sb is already being run: a.sb → b.sb → ./a.sb"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error %.2000q does not say %q", msg, want)
		}
	}
}

// A chain of scripts deeper than scriptDepthMax stops where it would go
// one deeper, naming the command, the depth and the limit.
func TestSourceDeeperThanTheLimitIsRefused(t *testing.T) {
	files := map[string]string{}
	deepest := scriptDepthMax + 3
	for i := 1; i < deepest; i++ {
		files[fmt.Sprintf("d%d.sb", i)] = fmt.Sprintf("source d%d.sb\n", i+1)
	}
	files[fmt.Sprintf("d%d.sb", deepest)] = "help exit\n"
	t.Chdir(writeScripts(t, files))
	sh, out := plainShell()
	err := sourceIn(t, sh, "d1.sb")
	if err == nil {
		t.Fatalf("a chain of %d scripts was sourced to its end\n%.2000s", deepest, out)
	}
	msg := err.Error()
	over := fmt.Sprintf("d%d.sb", scriptDepthMax+1)
	for _, want := range []string{"source: " + over + " would be script " + fmt.Sprint(scriptDepthMax+1) + " deep", fmt.Sprintf("at most %d deep", scriptDepthMax)} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error %.2000q does not say %q", msg, want)
		}
	}
	if strings.Contains(out.String(), fmt.Sprintf("source d%d.sb", scriptDepthMax+2)) {
		t.Errorf("the script %d deep ran:\n%.3000s", scriptDepthMax+1, out)
	}
	var help bytes.Buffer
	hs := NewShell(nil, &help, &help, sh.Theme, 200)
	if err := hs.Execute(context.Background(), "help source"); err != nil || !strings.Contains(help.String(), fmt.Sprintf("at most %d deep", scriptDepthMax)) {
		t.Errorf("help source does not give the limit (%v):\n%s", err, help.String())
	}
}

// A line failing three scripts deep is reported once, where it failed,
// and the error the outermost `source` returns names the chain once.
func TestNestedSourceFailureIsReportedOnceWithItsChain(t *testing.T) {
	t.Chdir(writeScripts(t, map[string]string{
		"a.sb": "source b.sb\nhelp never\n",
		"b.sb": "# b\nsource c.sb\nhelp never\n",
		"c.sb": "help exit\n\nnosuchcmd here\nhelp never\n",
	}))
	sh, out := plainShell()
	err := sourceIn(t, sh, "a.sb")
	if err == nil {
		t.Fatalf("the failing line was passed over:\n%s", out)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "a.sb:1 → b.sb:2 → c.sb:3: stopped: ") || strings.Count(msg, "stopped") != 1 || strings.Count(msg, "unknown command") != 1 || len(msg) > 1000 {
		t.Errorf("the error (%d bytes) does not name the chain a.sb:1 → b.sb:2 → c.sb:3 and the failure once:\n%s", len(msg), msg)
	}
	if n := strings.Count(out.String(), "error:"); n != 1 {
		t.Errorf("the failure was reported %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out.String(), "help never") {
		t.Errorf("a script went on after the failure:\n%s", out)
	}
	var se *ScriptError
	if !errors.As(err, &se) || se.File != "a.sb" || se.Line != 1 || se.Where() != "a.sb line 1 → b.sb line 2 → c.sb line 3" {
		t.Errorf("the failure's outermost place is not a.sb line 1 (%v)", err)
	}
}

// `stepbox run` of a file that sources itself fails at once, as a failed
// line does (exit status 1), naming the loop, in a few lines: the bug
// recursed to the descriptor limit, then printed a message growing by a
// prefix per level (here bounded by a limit of 512 descriptors).
func TestRunOfAScriptSourcingItselfFailsAtOnce(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := writeScripts(t, map[string]string{"rec.sb": "source rec.sb\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", `ulimit -n 512 && exec "$0" --plain --state-dir "$1" run rec.sb`, stepboxBinary(t), filepath.Join(dir, "state"))
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("stepbox run rec.sb: %v, want exit status 1\n%.3000s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{"source: rec.sb is already being run: rec.sb → rec.sb", "stepbox run: rec.sb line 1 failed"} {
		if !strings.Contains(s, want) {
			t.Errorf("stepbox run rec.sb does not say %q:\n%.3000s", want, s)
		}
	}
	if out.Len() > 2000 || strings.Count(s, "source rec.sb") != 1 {
		t.Errorf("stepbox run rec.sb wrote %d bytes, sourcing %d times:\n%.3000s", out.Len(), strings.Count(s, "source rec.sb"), s)
	}
}

// SIGINT (Ctrl-C where no terminal is) stops `stepbox run` of a script
// in a script it sources, and the run says where: each level through.
func TestSIGINTStopsARunInAScriptItSources(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := writeScripts(t, map[string]string{
		"a.sb": "new x\nsource b.sb\nhelp never\n",
		"b.sb": "-exec sleep 60\nhelp never\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, stepboxBinary(t), "--plain", "--state-dir", filepath.Join(dir, "state"), "run", "a.sb")
	cmd.Dir = dir
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "exec sleep 60") && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	var ee *exec.ExitError
	if ctx.Err() != nil || !errors.As(err, &ee) || ee.ExitCode() != 1 || time.Since(start) > 20*time.Second {
		t.Fatalf("stepbox run a.sb, sent SIGINT: %v after %v, want exit status 1 at once\n%s", err, time.Since(start), out.String())
	}
	s := out.String()
	if !strings.Contains(s, "interrupted: exec sleep (SIGINT)") || !strings.Contains(s, "stepbox run: a.sb line 2 → b.sb line 1 failed") || strings.Contains(s, "help never") {
		t.Errorf("the run does not say where SIGINT stopped it, or went on:\n%s", s)
	}
}
