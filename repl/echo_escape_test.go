package repl

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A script's lines are echoed with their control characters escaped, as
// error messages show them: a CR would let the line shown be another
// than the one run, an ESC retitle the terminal (issue 15, item 7).
func TestScriptEchoShowsTheLineThatRunsWithControlCharactersEscaped(t *testing.T) {
	sh, out := liveShell(t)
	f := scriptFile(t, "new q\n"+
		"exec sh -c \"echo REAL-COMMAND-RAN\" x\rq[] : exec echo a harmless line\n"+
		"-new 'x\x1b]2;T\x07'\n")
	if err := sh.RunScript(context.Background(), f, "cr.sb"); err != nil {
		t.Fatalf("the script stopped: %v\n%s", err, out)
	}
	got := out.String()
	if !strings.Contains(got, "REAL-COMMAND-RAN") {
		t.Fatalf("the line did not run:\n%s", got)
	}
	if strings.ContainsAny(got, "\r\x1b\x07") {
		t.Errorf("the echo printed a control character raw: %q", got)
	}
	for _, want := range []string{`x\rq[] : exec echo a harmless line`, `new 'x\x1b]2;T\x07'`} {
		if !strings.Contains(got, want) {
			t.Errorf("the echo lacks %s:\n%s", want, got)
		}
	}
}

// A ✓ line quotes what was typed (here a file name holding ESC [ 2 J,
// which the kernel accepts): it shows the escape, never clears the
// screen.
func TestSuccessLinesEscapeWhatTheyQuote(t *testing.T) {
	sh, out := liveShell(t)
	dir := t.TempDir()
	run(t, sh, out, "new web")
	out.Reset()
	run(t, sh, out, "save "+dir+"/steps$'\\e[2J\\e]0;T\\a'.sb")
	got := out.String()
	if !strings.Contains(got, `steps\x1b[2J\x1b]0;T\x07.sb`) || strings.ContainsAny(got, "\x1b\x07") {
		t.Errorf("save's ✓ line, want the file name escaped: %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "steps\x1b[2J\x1b]0;T\a.sb")); err != nil {
		t.Errorf("save did not write the file it names: %v", err)
	}
}

// scriptFile is a script of the given text in a temporary file, open for
// RunScript and closed when the test ends.
func scriptFile(t *testing.T, text string) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "script.sb")
	if err := os.WriteFile(name, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// $$, $?, $1 … are a shell's own parameters: stepbox splits words as a
// shell does but runs none, so it refuses them with where they work
// instead of letting them vanish; in single quotes they reach the box's
// shell.
func TestAShellsOwnParameterIsRefusedWithWhereItWorks(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new q")
	for _, line := range []string{"exec echo $$", `exec echo "pid $$"`, "exec echo $?", "exec echo ${1}"} {
		out.Reset()
		err := sh.Execute(context.Background(), line)
		if err == nil || !strings.Contains(err.Error(), "a shell's own parameter") || !strings.Contains(err.Error(), "exec sh -c") {
			t.Errorf("%s: want a refusal naming the parameter and `exec sh -c`, got %v\n%s", line, err, out)
		}
		if strings.Contains(err.Error(), "cannot split") {
			t.Errorf("%s: the refusal reads as a parse error: %v", line, err)
		}
	}
	out.Reset()
	run(t, sh, out, `exec sh -c 'echo "box shell $$"'`)
	if !strings.Contains(out.String(), "box shell ") {
		t.Errorf("$$ in single quotes did not reach the box's shell:\n%s", out)
	}
	out.Reset()
	run(t, sh, out, "exec echo $HOME")
	if !strings.Contains(out.String(), os.Getenv("HOME")) {
		t.Errorf("a variable of the host's no longer expands:\n%s", out)
	}
}
