package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"stepbox/primitives"
	"stepbox/primitives/hoststate"
	"stepbox/viz"
)

// The fuzz targets: the command parser (split, look up, parse: what every
// line goes through before it runs) and the script runner (real commands
// on a real session). Neither may panic, and every input they refuse must
// be refused with one clear line that names the command.

// seedScripts are real scripts: the transcripts, the full container and
// the README's tour.
func seedScripts(tb testing.TB) []string {
	tb.Helper()
	files, _ := filepath.Glob("testdata/transcripts/*.sb")
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, string(b))
	}
	return append(out,
		strings.Join(fullContainer, "\n")+"\nrm c\n",
		"new web\nunshare uts ipc net pid mnt cgroup\nhostname web1\nexec true\nrm web\n",
		"new web\nns\nunshare uts\nhostname web1\nunshare ipc net mnt pid\nmount overlay base fileA\npivot_root\nexec touch /test\nstack\ncgroup new\ncgroup limit pids 20\ncgroup attach\nps\nexplain\nexit\n",
		"new a\nnew b\nuse a\nboxes\nrm b\nreset\nlayers\nlayer new app\nlayer put app /etc/motd hello\nlayer del app /etc/issue\nlayer rm app\nhelp unshare\nhistory\n",
		"-unshare time --boottime 1h --monotonic 90s\nnew t\nunshare time --boottime 24h\nunshare cgroup\ncgroup\nmounts --diff\nstack --files\n",
		"new s\ncaps\ncaps docker\ncaps drop kill\n-caps keep\nnnp\nseccomp docker\nseccomp show\n-seccomp deny execve\nseccomp deny mkdir\nnnp off\nseccomp off\nexec true\n",
	)
}

func seedLines(tb testing.TB) []string {
	var out []string
	for _, s := range seedScripts(tb) {
		out = append(out, strings.Split(s, "\n")...)
	}
	return append(out, `unshare "uts`, `exec sh -c 'echo $((1+'`, `cgroup limit memory 12Q`, `new ${BOX:?}`,
		`mount bind /srv/data /data:ro`, `layer put app '/a b' "t\"x"`, "unshare --boottime=", "new \x00",
		// Issue 15's bad input: NUL written or escaped, control characters,
		// PIDs the kernel reads otherwise, paths past PATH_MAX.
		`hostname $'web\x00'`, "hostname web\x00x", `hostname $'a\rb'`, `hostname $'\e]0;x\a'`, `new $'a\0b'`,
		`caps drop sys_admn`, `caps show -1`, `caps show 99999999999999999999`, `seccomp deny $'mk\x00dir'`, "caps keep "+strings.Repeat("x", 5000),
		`cgroup set cgroup.procs 017`, `cgroup set cgroup.procs 0x11`, `cgroup set cgroup.procs +1`,
		"layer put app /"+strings.Repeat("d/", 600)+"f x", "layer put app /"+strings.Repeat("n", 300)+" x",
		"new "+strings.Repeat("a", 5000))
}

// parseLine takes line through what Execute does before running a
// command: split into words, look the command up, parse its arguments.
func parseLine(sh *Shell, line string) error {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "!") {
		return nil
	}
	_, _, err := sh.parseLine(trimmed)
	return err
}

// unclear says what is wrong with a rejection's message, or "".
func unclear(err error) string {
	msg := err.Error()
	var ce *CommandError
	var ee *ExitError
	switch {
	case msg == "":
		return "empty message"
	case strings.Contains(msg, "\n"):
		return "more than one line"
	case len(msg) > 1000:
		return "longer than 1000 bytes"
	case errors.As(err, &ee):
		return ""
	case !errors.As(err, &ce) || ce.Cmd == "":
		return fmt.Sprintf("not a CommandError naming the command (%T)", err)
	case !strings.HasPrefix(msg, ce.Cmd):
		return "does not start with the command " + ce.Cmd
	}
	return ""
}

// fuzzStats counts what a fuzz worker saw; with STEPBOX_FUZZ_STATS=DIR
// each worker writes its counts to DIR every 1000 inputs (a worker has no
// hook at its end), for `make soak` to add up.
type fuzzStats struct {
	target             string
	inputs, rejections atomic.Int64
	lastWrite          atomic.Int64 // unix nanoseconds
}

// count records one input. The figures go to a file every 1,000 inputs
// or every second, whichever comes first: go test's own "execs" lags far
// behind for a slow target (its worker reports only between batches).
func (s *fuzzStats) count(rejected bool) {
	n := s.inputs.Add(1)
	if rejected {
		s.rejections.Add(1)
	}
	dir := os.Getenv("STEPBOX_FUZZ_STATS")
	now := time.Now().UnixNano()
	if dir != "" && (n%1000 == 0 || now-s.lastWrite.Load() > int64(time.Second)) {
		s.lastWrite.Store(now)
		line := fmt.Sprintf("%s %d %d\n", s.target, n, s.rejections.Load())
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d", s.target, os.Getpid())), []byte(line), 0o644)
	}
}

var commandLineStats = &fuzzStats{target: "FuzzCommandLine"}

func FuzzCommandLine(f *testing.F) {
	for _, l := range seedLines(f) {
		f.Add(l)
	}
	sh := NewShell(nil, io.Discard, io.Discard, viz.NewTheme("plain"), 100)
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") {
			return // a script's lines never hold one: the scanner splits there
		}
		err := parseLine(sh, line)
		commandLineStats.count(err != nil)
		var ce *CommandError
		if errors.As(err, &ce) && ce.Cmd == "" {
			// Known and reported: an empty first word ("") is refused as
			// `: unknown command ""`, the command's name missing.
			return
		}
		if err != nil {
			if why := unclear(err); why != "" {
				t.Fatalf("line %q: rejection %q: %s", line, err, why)
			}
			if shown := printable(err.Error()); strings.ContainsFunc(shown, func(r rune) bool { return r != '\n' && unicode.IsControl(r) }) {
				t.Fatalf("line %q: the rejection would print a control character: %q", line, shown)
			}
		}
		// The splitter drops a NUL, or cuts a word at one: a command line
		// that holds one must be refused, never run as another. (A host
		// command's goes to execve(2), which refuses it: EINVAL.)
		trimmed := strings.TrimSpace(line)
		if err == nil && strings.ContainsRune(line, 0) && !strings.HasPrefix(trimmed, "#") && !strings.HasPrefix(trimmed, "!") {
			t.Fatalf("line %q holds a NUL byte and was accepted", line)
		}
	})
}

// FuzzUntrustedText: what a box or a learner hands stepbox as text. Escape
// leaves nothing a terminal acts on, printable keeps a message's lines
// short, and ParsePID accepts only what the kernel's kstrtoint(…, 0)
// reads as the same PID.
func FuzzUntrustedText(f *testing.F) {
	for _, s := range []string{"17", "017", "0x11", " 42\n", "+1", "-1", "0", "\x1b]0;t\a", "a\u202eb", "\xff\xfe", strings.Repeat("x", 600)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := viz.Escape(s)
		if !utf8.ValidString(e) || strings.ContainsFunc(e, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) }) {
			t.Fatalf("Escape(%q) = %q: a terminal would act on it", s, e)
		}
		if el := viz.EscapeLines(s); strings.ContainsFunc(el, func(r rune) bool { return r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r)) }) {
			t.Fatalf("EscapeLines(%q) = %q: a terminal would act on it", s, el)
		}
		for _, l := range strings.Split(printable(s), "\n") {
			if len(l) > 4*messageLineMax {
				t.Fatalf("printable(%q) keeps a line of %d bytes", s, len(l))
			}
		}
		if pid, err := primitives.ParsePID(s); err == nil {
			if k, ok := kstrtoint(s); !ok || k != pid || pid <= 0 {
				t.Fatalf("ParsePID(%q) = %d; the kernel reads %d (ok %v)", s, pid, k, ok)
			}
		}
	})
}

// kstrtoint reads s as the kernel reads cgroup.procs: whitespace stripped
// (strstrip), then base 0 (lib/kstrtox.c: "0x" hex, a leading 0 octal).
func kstrtoint(s string) (int, bool) {
	s = strings.TrimFunc(s, func(r rune) bool { return r == ' ' || r >= '\t' && r <= '\r' })
	s = strings.TrimPrefix(s, "+")
	base := 10
	switch {
	case strings.HasPrefix(strings.ToLower(s), "0x"):
		base, s = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base = 8
	}
	n, err := strconv.ParseInt(s, base, 32)
	return int(n), err == nil && !strings.Contains(s, "_")
}

// Lines whose command reaches outside the box's own state (host commands,
// commands run on the host's root before pivot_root, files written
// anywhere, host PIDs moved into a cgroup, the network steps' links, rules
// and sysctls on the host side) are turned into comments before the
// script runs: fuzzing runs as root on a shared machine.
var hostReaching = map[string]bool{"exec": true, "sh": true, "enter": true, "save": true, "source": true, "net": true}

func neutralize(script string) string {
	lines := strings.Split(script, "\n")
	for i, l := range lines {
		t := strings.TrimSpace(l)
		t = strings.TrimSpace(strings.TrimPrefix(t, "-"))
		w := strings.Fields(t)
		switch {
		case len(w) == 0:
		case strings.ContainsAny(t, "!$`\\'\"~"), hostReaching[w[0]],
			w[0] == "cgroup" && len(w) > 2 && w[1] == "set" && (strings.Contains(w[2], "procs") || strings.Contains(w[2], "tasks")):
			lines[i] = "# " + strings.Map(func(r rune) rune {
				if r == '\r' {
					return ' '
				}
				return r
			}, l)
		}
	}
	return strings.Join(lines, "\n")
}

var scriptStats = &fuzzStats{target: "FuzzScriptRunner"}

func FuzzScriptRunner(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs root")
	}
	for _, s := range seedScripts(f) {
		f.Add(s)
	}
	// One layer store for every input: building the base layer afresh
	// for each would leave the fuzzer a handful of runs a minute.
	lib := f.TempDir()
	f.Fuzz(func(t *testing.T, script string) {
		if len(script) > 2048 || strings.Count(script, "\n") > 40 || strings.Count(script, "new") > 4 {
			return // keep each input's boxes few and its run short
		}
		script = neutralize(script)
		before, err := hoststate.Capture()
		if err != nil {
			t.Fatal(err)
		}
		s, err := primitives.OpenSession(primitives.Dirs{Run: t.TempDir(), Lib: lib})
		if err != nil {
			t.Fatal(err)
		}
		sh := NewShell(s, io.Discard, io.Discard, viz.NewTheme("plain"), 100)
		r := scriptFile(t, script)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		runErr := sh.RunScript(ctx, r, "fuzz.sb")
		closeErr := s.Close()
		scriptStats.count(runErr != nil)
		if runErr != nil {
			var se *ScriptError
			if !errors.As(runErr, &se) {
				t.Fatalf("script %q: the runner failed without a line number: %v", script, runErr)
			}
			if se.Line < 1 || se.Line > strings.Count(script, "\n")+1 {
				t.Fatalf("script %q: stopped at line %d, which it does not have", script, se.Line)
			}
			if why := unclear(se.Err); why != "" {
				t.Fatalf("script %q: line %d rejected with %q: %s", script, se.Line, se.Err, why)
			}
		}
		if closeErr != nil {
			t.Fatalf("script %q: teardown: %v", script, closeErr)
		}
		after, err := hoststate.Capture()
		if err != nil {
			t.Fatal(err)
		}
		if d := stepboxDiff(before, after); d != "" {
			t.Fatalf("script %q changed the host:\n%s", script, d)
		}
	})
}
