package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"stepbox/primitives/step"
)

// A box names files and processes as it likes: ESC ] 0 ; retitles the
// terminal, ESC [ 2 J clears it. Every panel shows them escaped.
func TestPanelsEscapeNamesTheBoxChose(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new evil", "unshare mnt pid uts", "mount overlay base", "mount dev", "pivot_root",
		`exec sh -c 'touch "$(printf "/t\033]0;pwned\007\033[2J")"'`,
		`exec sh -c 'sh -c "sleep 30; : $(printf "\033]0;pwned\007")" >/dev/null 2>&1 </dev/null &'`)
	out.Reset()
	run(t, sh, out, "stack", "stack --files", "status", "ps", "mounts", "boxes")
	if strings.ContainsAny(out.String(), "\x1b\x07") {
		t.Fatalf("a panel printed a control character the box chose:\n%q", out)
	}
	if !strings.Contains(out.String(), `t\x1b]0;pwned\x07\x1b[2J`) {
		t.Errorf("the stack does not show the file, escaped:\n%s", out)
	}
	out.Reset()
	run(t, sh, out, "ps")
	if !strings.Contains(out.String(), `sleep 30; : \x1b]0;pwned\x07`) {
		t.Errorf("ps does not show the command line the box chose, escaped:\n%s", out)
	}
}

// errorOf runs line and returns what the shell printed for its failure.
func errorOf(t *testing.T, sh *Shell, out *bytes.Buffer, line string) string {
	t.Helper()
	out.Reset()
	err := sh.Execute(context.Background(), line)
	if err == nil {
		t.Fatalf("%s: accepted\n%s", step.Cut(line), out)
	}
	sh.reportError(err)
	return out.String()
}

// Bad input found by hand: each gets a clear error, repeats no input
// whole, and leaves the host and the boxes as they were.
func TestBadInputIsRefusedClearlyAndChangesNothing(t *testing.T) {
	sh, out := liveShell(t)
	long := strings.Repeat("a", 5000)
	run(t, sh, out, "layer new deep", "new web", "unshare uts", "hostname web1")
	store, err := sh.layers()
	if err != nil {
		t.Fatal(err)
	}
	layerDir := filepath.Dir(store.Root("deep"))

	// A path longer than PATH_MAX: refused, and `layer rm` still works.
	msg := errorOf(t, sh, out, "layer put deep /"+strings.Repeat("d/", 2500)+"f x")
	if !strings.Contains(msg, "at most 1024 bytes") || len(msg) > 1500 {
		t.Errorf("layer put with a 5,000-byte path: %d bytes of error:\n%.600s", len(msg), msg)
	}
	msg = errorOf(t, sh, out, "layer put deep /"+strings.Repeat("n", 300)+" x")
	if !strings.Contains(msg, "NAME_MAX") {
		t.Errorf("layer put with a 300-byte name: %s", msg)
	}
	run(t, sh, out, "layer rm deep")
	if _, err := os.Stat(layerDir); !os.IsNotExist(err) {
		t.Errorf("layer rm left %s: %v", layerDir, err)
	}

	// Hostnames with CR, ESC or NUL: refused, the box's name unchanged.
	for _, bad := range []string{`$'web\r2'`, `$'web\e]0;x\a'`, `$'web\x00'`, "web\x00x", `"` + long + `"`} {
		msg := errorOf(t, sh, out, "hostname "+bad)
		if !strings.Contains(msg, "hostname") || len(msg) > 1500 || strings.ContainsAny(msg, "\r\x1b\x00") {
			t.Errorf("hostname %.20s: %d bytes of error: %q", bad, len(msg), msg[:min(len(msg), 300)])
		}
	}
	out.Reset()
	run(t, sh, out, "exec hostname")
	if !strings.Contains(out.String(), "web1") {
		t.Errorf("the box's hostname changed: %s", out)
	}

	// Box names with NUL, and 5,000 characters: refused, cut in the message.
	for _, bad := range []string{`$'a\x00b'`, "a\x00b", long} {
		msg := errorOf(t, sh, out, "new "+bad)
		if len(msg) > 1500 || strings.ContainsRune(msg, 0) {
			t.Errorf("new %.20s: %d bytes of error: %q", bad, len(msg), msg[:min(len(msg), 300)])
		}
	}
	if names := sh.Session.BoxNames(); len(names) != 1 {
		t.Errorf("boxes after the refusals: %v", names)
	}
	// Whatever message repeats it, a 5,000-character word is cut.
	for _, line := range []string{"use " + long, "layer rm " + long, "cgroup set " + long + " 1", long} {
		if msg := errorOf(t, sh, out, line); len(msg) > 1500 || strings.Contains(msg, long) {
			t.Errorf("%.30s…: %d bytes of error, not cut:\n%.300s", line, len(msg), msg)
		}
	}
}

// A 20 MB line names its line number, and a '-' before it lets the
// script go on, as every other failing line does.
func TestAHugeScriptLineIsAFailureOfItsLine(t *testing.T) {
	sh, out := liveShell(t)
	huge := strings.Repeat("x", 20<<20)
	f := scriptFile(t, "new web\n-exec echo "+huge+"\nnew db\nexec echo "+huge+"\nnew never\n")
	err := sh.RunScript(context.Background(), f, "huge.sb")
	var se *ScriptError
	if !errors.As(err, &se) || se.Line != 4 || !strings.Contains(err.Error(), "bytes long") {
		t.Fatalf("the script stopped with %v, want a stop at line 4 saying the line is too long", err)
	}
	if names := sh.Session.BoxNames(); strings.Join(names, " ") != "db web" {
		t.Errorf("boxes made: %v, want db and web (line 2's '-' goes on, line 4 stops)", names)
	}
	if out.Len() > 1<<20 {
		t.Errorf("the script echoed %d bytes", out.Len())
	}
}

// After pivot_root, a new sysfs in a user namespace is refused (the
// host's is out of sight): with a network namespace of its own the box
// kept one made before its root moved and mount sys attaches it; without,
// the hint is to do it before pivot_root, not a bare "`unshare net` first".
func TestMountSysAfterPivotRootInAUserBoxGetsTheRightHint(t *testing.T) {
	sh, out := liveShell(t)
	run(t, sh, out, "new u --user", "unshare mnt net pid", "mount overlay base", "pivot_root", "mount sys")
	b, err := sh.Session.Box("u")
	if err != nil {
		t.Fatal(err)
	}
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", b.PID()))
	if err != nil || !regexp.MustCompile(`(?m)^\S+ \S+ \S+ \S+ /sys ro,.* - sysfs `).Match(mi) {
		t.Errorf("mount sys after pivot_root in a --user box with its own net namespace: no read-only sysfs at /sys (%v):\n%s", err, mi)
	}
	run(t, sh, out, "new v --user", "unshare mnt pid", "mount overlay base", "pivot_root")
	msg := errorOf(t, sh, out, "mount sys")
	if strings.Contains(msg, "`unshare net` first") || !strings.Contains(msg, "before pivot_root") {
		t.Errorf("mount sys after pivot_root in a --user box without a net namespace:\n%s", msg)
	}
}

// A full disk under the ledger is the state dir's problem, not a cpuset's.
func TestAFullStateDirIsNotExplainedAsACpuset(t *testing.T) {
	sh, _ := plainShell()
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer full.Close()
	_, werr := full.Write([]byte("{}\n"))
	// As Ledger.Add words it.
	err = &CommandError{Cmd: "mount overlay", Err: fmt.Errorf("ledger: write %s: %w", "/run/stepbox/sessions/1-1/boxes/web/ledger.jsonl", werr)}
	c := explainFailure(sh.failureOf(err))
	if c == nil || strings.Contains(c.rule, "cpuset") || !strings.Contains(c.rule, "state dir") {
		t.Fatalf("ENOSPC on the ledger explained as %+v", c)
	}
}

// `stepbox cleanup` on a state dir others could write refuses first and
// says nothing else: no "0 crashed sessions cleaned" before the refusal.
func TestCleanupOfARefusedStateDirSaysOnlyTheRefusal(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(run, 0o777); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("cleanup of a world-writable state dir: %v, want exit 1", err)
	}
	if stdout.Len() > 0 {
		t.Errorf("cleanup printed before its refusal: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "stepbox cleanup: state dir "+run) || !strings.Contains(stderr.String(), "refuses") {
		t.Errorf("cleanup does not say why it refused: %q", stderr.String())
	}
}
