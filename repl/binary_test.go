package repl

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"stepbox/primitives/hoststate"
	"stepbox/viz"
)

// runStepbox runs `stepbox run -` with script on stdin, 300 columns
// wide: wide enough that no panel shortens a path, whose length varies.
func runStepbox(t *testing.T, stateDir, script string, extraArgs ...string) (string, int) {
	t.Helper()
	return runStepboxAt(t, 300, stateDir, script, extraArgs...)
}

// runStepboxAt runs `stepbox run -` as runStepbox does, at columns.
func runStepboxAt(t *testing.T, columns int, stateDir, script string, extraArgs ...string) (string, int) {
	t.Helper()
	args := append([]string{"--state-dir", stateDir}, extraArgs...)
	args = append(args, "run", "-")
	cmd := exec.Command(stepboxBinary(t), args...)
	cmd.Env = append(os.Environ(), "COLUMNS="+strconv.Itoa(columns))
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), code
}

// normalizer replaces volatile values with stable tokens. The same value
// always gets the same token, so a golden file still shows which inodes
// or PIDs are equal and which differ.
type normalizer struct {
	seen map[string]map[string]string
}

var volatile = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"ino", regexp.MustCompile(`\b40265\d{5}\b`)},
	{"id", regexp.MustCompile(`\b[0-9a-f]{12}\b`)},
	{"time", regexp.MustCompile(`\b\d+\.\d{2}\b`)},
	{"session", regexp.MustCompile(`\b\d+-\d+\b`)},
}

// A host PID is recognised where stepbox names it as one ("PID 715",
// "host · 715 │", "/proc/715/") or by its length; every later occurrence of
// that number is the same PID, wherever it stands. PIDs are short on a
// freshly booted machine (CI starts near 500), so length alone is not
// enough.
var (
	pidContext = regexp.MustCompile(`(?:\bPIDs? |\bpid |pid=|PID=|/proc/|^)(\d{2,7})\b|· (\d{2,7}) +│`)
	pidLong    = regexp.MustCompile(`\b(\d{4,7})\b`)
	number     = regexp.MustCompile(`\b\d+\b`)
)

func (n *normalizer) token(kind, v string) string {
	if n.seen == nil {
		n.seen = map[string]map[string]string{}
	}
	if n.seen[kind] == nil {
		n.seen[kind] = map[string]string{}
	}
	if tok, ok := n.seen[kind][v]; ok {
		return tok
	}
	tok := fmt.Sprintf("<%s%d>", kind, len(n.seen[kind])+1)
	n.seen[kind][v] = tok
	return tok
}

func (n *normalizer) normalize(s string) string {
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		for _, v := range volatile {
			line = v.re.ReplaceAllStringFunc(line, func(m string) string { return n.token(v.kind, m) })
		}
		lines[i] = line
	}
	pids := map[string]bool{}
	for _, line := range lines {
		for _, re := range []*regexp.Regexp{pidContext, pidLong} {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				for _, g := range m[1:] {
					if g != "" {
						pids[g] = true
					}
				}
			}
		}
	}
	for i, line := range lines {
		line = number.ReplaceAllStringFunc(line, func(m string) string {
			if pids[m] {
				return n.token("pid", m)
			}
			return m
		})
		// Padding around a replaced value changes width: runs of spaces
		// and of border lines count as one.
		line = regexp.MustCompile(` +│`).ReplaceAllString(line, " │")
		line = regexp.MustCompile(`  +`).ReplaceAllString(line, "  ")
		line = regexp.MustCompile(`─+`).ReplaceAllString(line, "─")
		lines[i] = strings.TrimRight(line, " ")
	}
	return strings.Join(lines, "\n")
}

// unfold joins each line that starts with spaces to the line before it:
// text folded at a terminal's width reads the same wherever the folds
// fall, and they move with the length of the PIDs in a line.
func unfold(s string) string {
	// A shell command folds with a trailing backslash, where the temp
	// dir's length puts the fold (viz/shellfold.go).
	s = regexp.MustCompile(` *\\\n +`).ReplaceAllString(s, " ")
	return regexp.MustCompile(`\n +`).ReplaceAllString(s, " ")
}

// Transcripts: each script under testdata/transcripts runs through
// `stepbox run`, and its normalized output must match the .out file. A
// script named NAME_COLUMNS.sb (steps_80.sb) runs that wide: no line may
// be wider (but a command "with standard tools", printed whole to be
// copied). Output is compared unfolded (the golden file keeps the folds).
func TestTranscripts(t *testing.T) {
	needRoot(t)
	scripts, _ := filepath.Glob("testdata/transcripts/*.sb")
	if len(scripts) == 0 {
		t.Fatal("no transcripts")
	}
	for _, script := range scripts {
		name := strings.TrimSuffix(filepath.Base(script), ".sb")
		t.Run(name, func(t *testing.T) {
			hostUnchanged(t)
			src, err := os.ReadFile(script)
			if err != nil {
				t.Fatal(err)
			}
			state := t.TempDir()
			columns := 300
			if m := regexp.MustCompile(`_(\d+)$`).FindStringSubmatch(name); m != nil {
				columns, _ = strconv.Atoi(m[1])
			}
			out, code := runStepboxAt(t, columns, state, string(src), "--plain")
			shellLines := false // explain's commands with standard tools
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") {
					shellLines = l == "  with standard tools"
				}
				if n := utf8.RuneCountInString(l); n > columns && !shellLines {
					t.Errorf("a line is %d wide, wider than %d: %q", n, columns, l)
				}
			}
			out = strings.ReplaceAll(out, state, "<state>")
			var n normalizer
			got := n.normalize(out) + fmt.Sprintf("\n[exit %d]\n", code)
			golden := strings.TrimSuffix(script, ".sb") + ".out"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if unfold(got) != unfold(string(want)) {
				t.Errorf("transcript %s differs from %s (-update rewrites it):\n%s", name, golden, lineDiff(string(want), got))
			}
		})
	}
}

func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, a, c)
		}
	}
	return b.String()
}

// teardownScript builds two boxes with every kind of resource: namespaces,
// a background process, an overlay with pivot_root and mounts, a cgroup.
const teardownScript = `new web
unshare uts ipc net mnt cgroup pid
hostname inside
mount overlay base fileA
mount dev
mount tmpfs /tmp
pivot_root
cgroup new
cgroup limit pids 50
cgroup attach
exec sh -c 'sleep 300 >/dev/null 2>&1 &'
new db
unshare uts mnt
mount overlay base
`

func TestTeardownOnExitLeavesTheHostAsItWas(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	out, code := runStepbox(t, dir, teardownScript+"exit\n")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	assertNoSessions(t, dir)
}

func TestFailingLineStopsTheScriptAndTearsDown(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	out, code := runStepbox(t, dir, teardownScript+"-exec false\nexec sh -c 'exit 3'\nexec echo never\n")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if !strings.Contains(out, "line 16") || strings.Contains(out, "never\n") {
		t.Fatalf("the run did not stop at line 16:\n%s", out)
	}
	if !strings.Contains(out, "exec false: exit status 1") {
		t.Fatalf("a '-' line's failure was not reported:\n%s", out)
	}
	assertNoSessions(t, dir)
}

func TestTeardownAfterRmAndReset(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	out, code := runStepbox(t, dir, teardownScript+"rm web\n!test -z \"$(ps -o args= --ppid $PPID | grep '^stepbox-box web')\"\nreset\nboxes\n")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(out, "no boxes") {
		t.Fatalf("boxes after reset:\n%s", out)
	}
}

// startSession starts `stepbox run -` reading from a pipe, feeds it the
// script, and waits until its boxes exist.
func startSession(t *testing.T, dir, script string) (*exec.Cmd, *os.File) {
	t.Helper()
	return startSessionTo(t, dir, script, os.Stderr)
}

// startSessionTo is startSession with the session's output to out.
func startSessionTo(t *testing.T, dir, script string, out io.Writer) (*exec.Cmd, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(stepboxBinary(t), "--state-dir", dir, "run", "-")
	cmd.Stdin = r
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	childStepbox(t, cmd, dir, syscall.SIGTERM)
	r.Close()
	w.WriteString(script + "!touch " + dir + "/ready\n")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(dir + "/ready"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatal("the session never got ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cmd, w
}

func TestTeardownOnSIGTERM(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	cmd, w := startSession(t, dir, teardownScript)
	defer w.Close()
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	assertNoSessions(t, dir)
}

// SIGTERM while a command runs forever in a box: the teardown ends the
// command rather than waiting for it (it used to wait on the box the
// command held), no later line of the script runs, and a host command's
// leftovers end with the session.
func TestSIGTERMDuringALongExecTearsDown(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	cmd, w := startSession(t, dir, teardownScript+"!sh -c 'sleep 307 &'\n")
	defer w.Close()
	w.WriteString("exec sh -c 'while :; do sleep 1; done'\nnew later\n")
	time.Sleep(300 * time.Millisecond) // the exec has started
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the session was still running 15 s after SIGTERM")
	}
	assertNoSessions(t, dir)
	if out, _ := exec.Command("pgrep", "-f", "sleep 307").Output(); len(out) > 0 {
		t.Errorf("a host command's background child outlived the session: %s", out)
	}
}

func TestCleanupAfterKill9(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	cmd, w := startSession(t, dir, teardownScript)
	defer w.Close()
	cmd.Process.Kill()
	cmd.Wait()
	out, err := exec.Command(stepboxBinary(t), "--state-dir", dir, "cleanup").CombinedOutput()
	if err != nil {
		t.Fatalf("cleanup: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "1 crashed session") {
		t.Fatalf("cleanup found no crashed session:\n%s", out)
	}
	assertNoSessions(t, dir)
	if left := hoststate.StepboxProcesses(); len(left) > 0 {
		t.Fatalf("processes left after cleanup: %v", left)
	}
}

func assertNoSessions(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, "run", "sessions"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if len(names) > 0 {
		t.Fatalf("session state left behind: %v", names)
	}
}

// Rootless: uid 65534 builds a box in its own user namespace, up to
// pivot_root with the box's own /proc.
func TestRootlessUserBox(t *testing.T) {
	needRoot(t) // to become uid 65534 with setpriv
	hostUnchanged(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed")
	}
	dir, err := os.MkdirTemp("", "stepbox-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chown(dir, 65534, 65534)
	// All the way to pivot_root: in a user namespace the kernel mounts the
	// box's /proc only while the host's is still visible, so it goes on
	// before the old root is detached. Its PIDs are the box's few.
	script := "new web --user\nunshare uts mnt pid\nhostname rootless\nmount overlay base\npivot_root\n" +
		"exec sh -c 'id -u; hostname; echo procs $(ls /proc | grep -c \"^[0-9]\"); echo $$'\n"
	cmd := exec.Command("setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups",
		stepboxBinary(t), "--state-dir", dir, "run", "-")
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("rootless run: %v\n%s", err, out)
	}
	got := string(out)
	if !regexp.MustCompile(`\nprocs [1-9]\n`).MatchString(got) {
		t.Fatalf("the box's /proc does not show the box's own few processes:\n%s", got)
	}
	for _, want := range []string{"\n0\nrootless\n"} {
		if !strings.Contains(got, want) {
			t.Fatalf("rootless output lacks %q:\n%s", want, got)
		}
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if pid, _ := strconv.Atoi(lines[len(lines)-1]); pid <= 1 || pid > 100 {
		t.Fatalf("PID inside: %q", lines[len(lines)-1])
	}
}

// The lesson-ready breakout: out to the host after chroot, nowhere after
// pivot_root.
func TestChrootBreakoutEscapesButPivotRootHolds(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	script := `new jail
unshare mnt
mount overlay base
chroot
breakout
new real
unshare mnt pid
mount overlay base
pivot_root
breakout
`
	out, code := runStepbox(t, t.TempDir(), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	jail, real, ok := strings.Cut(out, "new real")
	hostRoot, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range hostRoot {
		names = append(names, e.Name())
	}
	if !ok || !strings.Contains(jail, "escaped:") || !strings.Contains(jail, strings.Join(names, " ")) {
		t.Fatalf("the chroot breakout did not reach the host's / (%s):\n%s", strings.Join(names, " "), jail)
	}
	if !strings.Contains(real, "contained:") || strings.Contains(real, "escaped:") {
		t.Fatalf("the breakout after pivot_root was not contained:\n%s", real)
	}
}

// The article's discovery commands and a limit that bites, through
// `stepbox run`: the cgroup carries the box's id, holds the box's PID 1,
// and a fork loop stops at pids.max while the session carries on.
func TestCgroupFoundByIDHoldsTheBoxAndLimitsBite(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	script := `new web
unshare uts pid mnt
cgroup new
cgroup limit pids 20
cgroup attach
!echo "found: $(find /sys/fs/cgroup -name "*$BOX_ID*" | wc -l)"
!for d in $(find /sys/fs/cgroup -name "*$BOX_ID*"); do grep -qx "$BOX_PID" $d/cgroup.procs || echo "missing from $d"; done
-exec sh -c 'for i in $(seq 1 40); do sleep 2 & done; wait'
cgroup show
cgroup limit pids max
exec echo still responsive
`
	out, code := runStepbox(t, t.TempDir(), script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "found: 0") || !strings.Contains(out, "found: ") {
		t.Fatalf("find -name '*ID*' found no cgroup of the box:\n%s", out)
	}
	if strings.Contains(out, "missing from /sys") {
		t.Fatalf("the box's PID 1 is not in every cgroup named after it:\n%s", out)
	}
	if !strings.Contains(out, "Cannot fork") && !strings.Contains(out, "can't fork") {
		t.Fatalf("the fork loop was not stopped by pids.max:\n%s", out)
	}
	if !strings.Contains(out, "forks refused") {
		t.Fatalf("the panel does not report the refused forks:\n%s", out)
	}
	if !strings.Contains(out, "still responsive") {
		t.Fatalf("the box did not answer after the fork loop:\n%s", out)
	}
}

// The normalizer gives the same transcript whether host PIDs are long
// (a machine up for days) or short (a fresh CI machine, or a container).
func TestNormalizerDoesNotDependOnPIDLength(t *testing.T) {
	const tmpl = `✓ box web (id 31d937682d08): box process PID %[2]d, in the host's namespaces
  PID %[3]d on the host is PID 1 in the box: commands now start from it
│ namespace │ host · %[1]d │ box web · %[2]d │ its PID 1 · %[3]d │
│ * │ web │ 31d937682d08 │ %[2]d │ %[3]d │ uts,pid │ - │ - │ web1 │ running │
│ merged  /proc/%[3]d/root  the box's / │
│ base  /lib/layers/base/root  ro · 277 files │
  /stepbox-%[1]d  (blkio cpu pids)
pids limit 50 written; echo $$ gives 8`
	var long, short normalizer
	a := long.normalize(fmt.Sprintf(tmpl, 1715, 31722, 31729))
	b := short.normalize(fmt.Sprintf(tmpl, 715, 722, 729))
	if a != b {
		t.Fatalf("normalized transcripts differ:\n%s", lineDiff(a, b))
	}
	for _, keep := range []string{"277 files", "limit 50", "gives 8", "PID 1 in the box"} {
		if !strings.Contains(b, keep) {
			t.Errorf("normalizer replaced a number that is not a host PID: %q is gone from\n%s", keep, b)
		}
	}
	if strings.Contains(b, "722") || strings.Contains(b, "715") {
		t.Errorf("a host PID survived:\n%s", b)
	}
}

// At 80 columns a line folds where its PIDs' length puts the break:
// normalized and unfolded, transcripts with long and short PIDs agree.
func TestFoldedTranscriptsDoNotDependOnPIDLength(t *testing.T) {
	say := func(box, init int) string {
		return viz.Hang("✓ ", fmt.Sprintf("box web (id 31d937682d08): box process PID %d, in the host's namespaces: nothing is isolated yet", box), 80) + "\n" +
			viz.Hang("  ", fmt.Sprintf("PID %d on the host is PID 1 in the box: commands now start from it, and PID %d waits", init, box), 80)
	}
	var a, b normalizer
	long, short := a.normalize(say(3172245, 3172299)), b.normalize(say(722, 729))
	if long == short {
		t.Fatalf("the fixture should fold differently:\n%s\n%s", long, short)
	}
	if unfold(long) != unfold(short) {
		t.Errorf("unfolded transcripts differ:\n%s\n%s", unfold(long), unfold(short))
	}
}

// A layer of one's own that a box mounted can be removed once that box
// is gone, and not before.
func TestLayerRemovedOnceNoBoxUsesIt(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	out, code := runStepbox(t, t.TempDir(), "layer new mine\nlayer put mine /etc/motd hi\nnew web\nunshare mnt\n"+
		"mount overlay base mine\n-layer rm mine\nrm web\nlayer rm mine\n", "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, want := range []string{"box web has it in its overlay; `rm web` first", "✓ layer mine removed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestResetLeavesAWorkingSession: `reset` between lessons removes every
// box and what the session made for them, and the session goes on as a
// fresh one: boxes, cgroups and steps all work again.
func TestResetLeavesAWorkingSession(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	state := t.TempDir()
	script := strings.Join([]string{
		"reset", // with nothing to remove
		"new a",
		"unshare uts pid",
		"cgroup new",
		"reset",
		"new b",
		"unshare uts",
		"hostname b1",
		"exec hostname",
		"cgroup new",
		"cgroup limit pids 8",
		"cgroup attach",
		"reset",
		"new a", // the name is free again
		"boxes",
	}, "\n")
	out, code := runStepbox(t, state, script, "--plain")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "session is ending") {
		t.Fatalf("reset ended the session:\n%s", out)
	}
	if !strings.Contains(out, "\nb1\n") {
		t.Fatalf("the box made after reset did not run its command:\n%s", out)
	}
}

// transcriptToFiles runs `stepbox run -` with script read from a file
// and its output written to files, as `stepbox run - < x.sb > log 2>&1`
// does (split: stderr to a file of its own), not through the pipes
// runStepbox reads: a box command must never get one of those files. It
// returns what the files hold and the output file's path, and fails the
// test on a non-zero exit.
func transcriptToFiles(t *testing.T, script string, split bool) (out, errs, outPath string) {
	t.Helper()
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "script.sb")
	if err := os.WriteFile(scriptPath, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(scriptPath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	outPath = filepath.Join(dir, "log")
	outf, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer outf.Close()
	errf := outf
	if split {
		if errf, err = os.Create(filepath.Join(dir, "err")); err != nil {
			t.Fatal(err)
		}
		defer errf.Close()
	}
	cmd := exec.Command(stepboxBinary(t), "--state-dir", t.TempDir(), "--plain", "run", "-")
	cmd.Env = append(os.Environ(), "COLUMNS=300")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, outf, errf
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if _, ok := runErr.(*exec.ExitError); runErr != nil && !ok {
		t.Fatal(runErr)
	}
	read := func(f *os.File) string {
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	out = read(outf)
	if split {
		errs = read(errf)
	}
	if runErr != nil {
		t.Fatalf("%v:\n%q\n%q", runErr, out, errs)
	}
	return out, errs, outPath
}

// Where stepbox's output is a file (`stepbox run x.sb > log 2>&1`), exec
// and enter -- CMD write through pipes of stepbox's, as on a terminal,
// never to the file itself (ut31 F2); their stdin is /dev/null, never the
// script stepbox reads. Stdout and stderr, one file, keep their order.
func TestExecAndEnterToAFileTranscriptGetPipes(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	// The shell's own fds ($$): a command substitution's fd 1 is its pipe.
	fds := `for n in 0 1 2; do echo "%s fd $n -> $(readlink /proc/$$/fd/$n)"; done`
	script := "new t\nunshare uts\n" +
		"exec sh -c '" + fmt.Sprintf(fds, "exec") + "'\n" +
		"enter -- sh -c '" + fmt.Sprintf(fds, "enter") + "'\n" +
		"exec sh -c 'echo o1; echo e1 >&2; echo o2; echo e2 >&2'\n" +
		"enter -- sh -c 'echo o3; echo e3 >&2; echo o4; echo e4 >&2'\n" +
		"exit\n"
	out, _, log := transcriptToFiles(t, script, false)
	for _, verb := range []string{"exec", "enter"} {
		if !strings.Contains(out, verb+" fd 0 -> /dev/null\n") {
			t.Errorf("%s's stdin is not /dev/null", verb)
		}
		for _, n := range []string{"1", "2"} {
			if !regexp.MustCompile(verb + ` fd ` + n + ` -> pipe:\[\d+\]\n`).MatchString(out) {
				t.Errorf("%s's fd %s is not a pipe", verb, n)
			}
		}
	}
	if strings.Contains(out, filepath.Dir(log)) {
		t.Errorf("a box command got a descriptor of stepbox's own output %s", log)
	}
	for _, want := range []string{"o1\ne1\no2\ne2\n", "o3\ne3\no4\ne4\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the box's stdout and stderr lines are out of order, want %q", want)
		}
	}
	if t.Failed() {
		t.Logf("the transcript:\n%s", out)
	}
}

// A box that truncates or rewrites its stdout changes nothing stepbox
// wrote to a file transcript: with the file itself it shared stepbox's
// offset and truncated every line written before it, which stepbox's
// next writes then followed after a hole of NUL bytes (ut31 F2).
func TestABoxCannotTruncateAFileTranscript(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	script := "new t\nunshare uts\n" +
		"exec echo before-the-box-truncates\n" +
		"exec sh -c ': > /proc/self/fd/1; echo exec-truncated'\n" +
		"-exec truncate -s 0 /proc/self/fd/1\n" +
		"enter -- sh -c ': > /proc/self/fd/2; echo enter-truncated'\n" +
		"exit\n"
	out, _, _ := transcriptToFiles(t, script, false)
	for _, want := range []string{"stepbox > new t\n", "before-the-box-truncates\n", "exec-truncated\n", "enter-truncated\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the transcript lost %q, written before the box truncated its stdout:\n%q", want, out)
		}
	}
	if strings.Contains(out, "\x00") {
		t.Errorf("the box truncated the transcript under stepbox's offset (NUL bytes):\n%q", out)
	}
}

// A box's escape sequences land in a file transcript escaped, as on a
// terminal and in a recording: whoever later cats the file gets no
// title, query or mode from the box (ut31 F2). Its stderr goes to
// stepbox's stderr, its stdout to stepbox's stdout.
func TestBoxEscapesInAFileTranscriptAreEscaped(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	script := "new t\nunshare uts\n" +
		`exec sh -c 'printf "\033]0;T\007out\n"; printf "\033[6nerr\n" >&2; printf "no newline"'` + "\n" +
		`enter -- sh -c 'printf "\033]0;E\007enter-out\n"; printf "\033P+q544e\033\\\\enter-err\n" >&2'` + "\n" +
		"exit\n"
	out, errs, _ := transcriptToFiles(t, script, true)
	for _, c := range []struct{ in, want string }{
		{out, `\x1b]0;T\x07out` + "\n"},
		{errs, `\x1b[6nerr` + "\n"},
		{out, "no newline\n"},
		{out, `\x1b]0;E\x07enter-out` + "\n"},
		{errs, `\x1bP+q544e\x1b\\enter-err` + "\n"},
	} {
		if !strings.Contains(c.in, c.want) {
			t.Errorf("want %q in the transcript:\nstdout %q\nstderr %q", c.want, out, errs)
		}
	}
	if strings.ContainsAny(out+errs, "\x1b\x07") {
		t.Errorf("a box's escape reached the transcript raw:\nstdout %q\nstderr %q", out, errs)
	}
}
