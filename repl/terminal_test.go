package repl

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"stepbox/primitives/hoststate"
)

// tmuxPane is one tmux pane on a server of the test's own (its socket in
// the test's temp dir), 120×40, running sh.
type tmuxPane struct {
	t    *testing.T
	sock string
	from int           // the first line waitFor looks at (see mark)
	runs []*stepboxRun // the stepbox sessions started in it
}

func newTmuxPane(t *testing.T) *tmuxPane { t.Helper(); return newTmuxPaneOf(t, 120, 40) }

// newTmuxPaneOf is a pane of cols×rows.
func newTmuxPaneOf(t *testing.T, cols, rows int) *tmuxPane {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("STEPBOX_MUST_WORK") == "1" {
			t.Fatal("tmux is needed for the real-terminal test (make deps installs it)")
		}
		t.Skip("tmux is not installed")
	}
	p := &tmuxPane{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	p.tmux("new-session", "-d", "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), "env", "PS1=$ ", "LANG=C.UTF-8", "sh")
	// Registered after the pane's TempDir: it runs before the test's temp
	// dirs (the sessions' state dirs among them) are removed.
	t.Cleanup(func() {
		for _, problem := range p.end(endWithin) {
			t.Error(problem)
		}
	})
	p.waitFor("$")
	return p
}

// stepbox types line, which starts stepbox with state dir dir, and holds
// the session it started: the test's cleanup ends it (end) before the
// state dir goes.
func (p *tmuxPane) stepbox(dir, line string) {
	p.t.Helper()
	p.line(line)
	p.runs = append(p.runs, watchStepbox(p.t, stepboxBinary(p.t), p.stepboxInPane(dir), dir, nil))
}

// end closes the pane's terminal, as closing the window does: tmux's
// server goes, and the shell and stepbox in the pane get SIGHUP. Then it
// waits for each session started in the pane to end (stepboxRun.end)
// and returns what went wrong.
func (p *tmuxPane) end(within time.Duration) []string {
	// A session typed without stepbox (above) is held too.
	for pid, dir := range p.stepboxes() {
		if p.holds(pid) {
			continue
		}
		if r, err := holdStepbox(stepboxBinary(p.t), pid, dir, nil); err == nil {
			p.runs = append(p.runs, r)
		}
	}
	exec.Command("tmux", "-S", p.sock, "kill-server").Run()
	var problems []string
	for _, r := range p.runs {
		problems = append(problems, r.end(within)...)
	}
	p.runs = nil
	return problems
}

func (p *tmuxPane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", p.sock}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startBox starts stepbox in the pane with state dir dir, echoing its
// exit status when it ends, and builds box web with its own uts, mnt and
// pid namespaces.
func (p *tmuxPane) startBox(dir string) {
	p.t.Helper()
	p.mark()
	p.stepbox(dir, stepboxBinary(p.t)+" --state-dir "+dir+"; echo STEPBOX-EXIT=$?")
	p.waitFor("stepbox ▸")
	p.line("new web")
	p.waitFor("web[] ▸")
	p.line("unshare uts mnt pid")
	p.waitFor("web[uts,mnt,pid] ▸")
}

// keys sends keys as tmux names them ("Tab", "Enter", "C-c") or literal text.
func (p *tmuxPane) keys(keys ...string) {
	p.t.Helper()
	p.tmux(append([]string{"send-keys", "-t", "0"}, keys...)...)
}

// line types text literally and presses Enter.
func (p *tmuxPane) line(text string) {
	p.t.Helper()
	p.tmux("send-keys", "-t", "0", "-l", text)
	p.keys("Enter")
}

// lines are the pane's history and screen, wrapped lines joined, without
// trailing spaces or the blank lines below the cursor.
func (p *tmuxPane) lines() []string {
	l := strings.Split(p.tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "0"), "\n")
	for i := range l {
		l[i] = strings.TrimRight(l[i], " ")
	}
	for len(l) > 0 && l[len(l)-1] == "" {
		l = l[:len(l)-1]
	}
	return l
}

// screen is what the pane shows from the mark on.
func (p *tmuxPane) screen() string {
	l := p.lines()
	if p.from < len(l) {
		l = l[p.from:]
	}
	return strings.Join(l, "\n") + "\n"
}

// mark makes later waits look only at what follows the current line.
func (p *tmuxPane) mark() { p.from = max(len(p.lines())-1, 0) }

// waitFor waits until every one of texts is on the screen, and returns it.
func (p *tmuxPane) waitFor(texts ...string) string {
	p.t.Helper()
	return p.waitWithin(20*time.Second, texts...)
}

// waitWithin is waitFor for at most d.
func (p *tmuxPane) waitWithin(d time.Duration, texts ...string) string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := p.screen()
		all := true
		for _, x := range texts {
			all = all && strings.Contains(s, x)
		}
		if all {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited for %q; the screen is:\n%s", texts, s)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// saneTerminal checks that the pane's terminal is back in cooked mode
// with echo, as `stty -a` reports it.
func (p *tmuxPane) saneTerminal(when string) {
	p.t.Helper()
	p.mark()
	// The marker is computed, so the command line itself never matches.
	p.line("stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo -e -icanon -e -echo | sort | tr '\\n' ' '; echo STTY-$((6*7))")
	s := p.waitFor("STTY-42\n")
	if !strings.Contains(s, "echo icanon STTY-42") {
		p.t.Errorf("%s, the terminal is not sane (stty -a should show icanon echo):\n%s", when, s)
	}
}

func TestRealTerminalCompletesRunsAShellAndLeavesTheTerminalSane(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	dir := t.TempDir()
	p.stepbox(dir, stepboxBinary(t)+" --state-dir "+dir+"; echo STEPBOX-EXIT=$?")
	p.waitFor("stepbox ▸")
	p.line("new web")
	p.waitFor("web[] ▸")

	p.keys("uns")
	p.waitFor("unshare", "give the box new namespaces")
	p.keys("Tab")
	p.keys(" ")
	s := p.waitFor("web[] ▸ unshare\n", "its own hostname", "its own process IDs")
	for _, typ := range []string{"uts", "ipc", "net", "mnt", "cgroup", "time"} {
		if !strings.Contains(s, typ) {
			t.Errorf("after `unshare ` the menu does not offer %s:\n%s", typ, s)
		}
	}
	p.line("uts pid mnt")
	p.waitFor("namespaces of box web", "uts ", " * ", "web[uts,mnt,pid] ▸")
	p.line("hostname inside-web")
	p.waitFor("hostname of box web is now inside-web")

	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	p.line("hostname")
	p.waitFor("inside-web\n")
	p.line("exit")
	p.waitFor("back in stepbox", "web[uts,mnt,pid] ▸")

	// Ctrl-C ends the running command, and only it.
	p.mark()
	p.line("exec sleep 60")
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	p.keys("C-c")
	s = p.waitFor("\ninterrupted: exec sleep (SIGINT)\n", "web[uts,mnt,pid] ▸")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Ctrl-C took %v to end exec", d)
	}
	// enter's command says it the same way, and neither is an error.
	p.mark()
	p.line("enter -- sleep 60")
	time.Sleep(300 * time.Millisecond)
	p.keys("C-c")
	s += p.waitFor("\ninterrupted: enter sleep (SIGINT)\n", "web[uts,mnt,pid] ▸")
	if strings.Contains(s, "error:") {
		t.Errorf("the learner's Ctrl-C is not an error:\n%s", s)
	}
	p.line("exec echo still-here")
	p.waitFor("still-here\n")
	// exec's stdin is /dev/null: a tool that reads it says so before it
	// ends at once, and what is typed next goes to stepbox's prompt.
	p.mark()
	p.line("exec cat")
	p.waitFor("its stdin is /dev/null (exec never connects your terminal)", "web[uts,mnt,pid] ▸")

	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after exit")
	assertNoSessions(t, filepath.Join(dir, "run"))
}

func TestCtrlDAndSIGTERMTearDownAndRestoreTheTerminal(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	dir := t.TempDir()
	start := func() { p.startBox(dir) }
	start()
	// One stray Ctrl-D while boxes run keeps them: it says what a second
	// would tear down, and any other line disarms it.
	p.line("!printf 'BOX%sPID=%s.\\n' - $BOX_PID") // the command line never matches
	boxPID := between(p.waitFor("BOX-PID=", ".\n"), "BOX-PID=", ".")
	p.mark()
	p.keys("C-d")
	p.waitFor("Ctrl-D: leaving tears down box web; Ctrl-D again (or `exit`) leaves")
	if _, err := os.Stat("/proc/" + boxPID); err != nil {
		t.Fatalf("one Ctrl-D ended box web's process %s: %v", boxPID, err)
	}
	p.line("exec true")
	p.mark()
	p.keys("C-d")
	p.waitFor("Ctrl-D again")
	p.keys("C-d")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after Ctrl-D")
	assertNoSessions(t, filepath.Join(dir, "run"))

	start()
	if err := unix.Kill(p.runs[len(p.runs)-1].pid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.waitFor(fmt.Sprintf("STEPBOX-EXIT=%d", 128+15))
	p.saneTerminal("after SIGTERM")
	assertNoSessions(t, filepath.Join(dir, "run"))
	if left := hoststate.StepboxProcesses(); len(left) > 0 {
		sort.Strings(left)
		t.Errorf("stepbox processes left: %v", left)
	}
}

// An interactive `enter` into a box with its own PID namespace hands the
// terminal to the shell and takes it back: once, the shell could not
// restore a process group it cannot see, and stepbox was left stopped.
func TestEnterGivesTheTerminalBack(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	p.startBox(t.TempDir())
	p.line("hostname inside")
	p.waitFor("is now inside")
	p.mark()
	p.line("enter")
	p.waitFor("#")
	p.line("echo IN-$(hostname)-$$")
	p.waitFor("IN-inside-")
	p.mark()
	p.line("exit")
	screen := p.waitFor("web[uts,mnt,pid] ▸")
	if strings.Contains(screen, "Stopped") || strings.Contains(screen, "process group") {
		t.Fatalf("after the entered shell exited:\n%s", screen)
	}
	p.mark()
	p.line("boxes")
	p.waitFor("running")
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after enter")
}

// Closing the terminal (a window closed, ssh dropped) tears everything
// down as SIGHUP does: the terminal's read returns end of file, which
// once crashed the key reader and left the session's cgroups behind.
func TestClosingTheTerminalTearsDown(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	dir := t.TempDir()
	p.stepbox(dir, stepboxBinary(t)+" --state-dir "+dir+" 2>"+filepath.Join(dir, "stderr"))
	p.waitFor("stepbox ▸")
	for _, l := range []struct{ cmd, prompt string }{
		{"new web", "web[] ▸"},
		{"unshare uts mnt pid", "web[uts,mnt,pid] ▸"},
		{"mount overlay base", "web[uts,mnt,pid|overlay] ▸"},
		{"pivot_root", "web[uts,mnt,pid|pivot] ▸"},
		{"cgroup new", "web[uts,mnt,pid|pivot|cg] ▸"},
		{"cgroup attach", "moved PID"},
	} {
		p.line(l.cmd)
		p.waitFor(l.prompt)
	}
	for _, problem := range p.end(20 * time.Second) {
		t.Error(problem)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "stderr")); strings.Contains(string(b), "panic") {
		t.Errorf("stepbox panicked when its terminal closed:\n%s", b)
	}
	assertNoSessions(t, filepath.Join(dir, "run"))
	if left := hoststate.StepboxProcesses(); len(left) > 0 {
		t.Errorf("stepbox processes left: %v", left)
	}
}

// BenchmarkStartToFirstPrompt times the REPL from exec to its prompt on
// a terminal (a pty), then leaves it with exit.
func BenchmarkStartToFirstPrompt(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	bin := os.Getenv("STEPBOX_BIN")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "stepbox")
		if out, err := exec.Command("go", "build", "-o", bin, "stepbox").CombinedOutput(); err != nil {
			b.Fatalf("go build: %v\n%s", err, out)
		}
	}
	dir := b.TempDir()
	var times []time.Duration
	b.ResetTimer() // not the go build above
	for range b.N {
		cmd := exec.Command(bin, "--state-dir", dir)
		t0 := time.Now()
		f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
		if err != nil {
			b.Fatal(err)
		}
		// Should the benchmark stop here, its cleanup hangs up (SIGHUP)
		// and waits for the teardown before the state dir goes.
		run := childStepbox(b, cmd, dir, unix.SIGHUP)
		var seen bytes.Buffer
		buf := make([]byte, 4096)
		for !bytes.Contains(seen.Bytes(), []byte("stepbox ▸")) {
			n, err := f.Read(buf)
			if err != nil {
				b.Fatalf("no prompt: %v\n%s", err, seen.String())
			}
			seen.Write(buf[:n])
		}
		times = append(times, time.Since(t0))
		b.StopTimer()
		if _, err := f.Write([]byte("exit\r")); err != nil {
			b.Fatal(err)
		}
		// Drain the terminal until the REPL has gone (EIO on the master).
		for {
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
		if err := cmd.Wait(); err != nil {
			b.Fatalf("stepbox after exit: %v\n%s", err, seen.String())
		}
		run.release()
		f.Close()
		b.StartTimer()
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1e3, "median-ms")
}

func TestKeysReadTogetherReachGoPromptOneAtATime(t *testing.T) {
	// Arrow keys in one read (key repeat, a slow ssh link, tmux): each
	// escape sequence is its own key, or go-prompt inserts them as text.
	buf := []byte("new web\runshare uts\t\x1b[A\x04\x1b[D\x1b[D\x1b[1;5Cx\x1bOH\x1b[3~\x1bb\x1b")
	var keys []string
	for len(buf) > 0 {
		keys = append(keys, string(nextKey(&buf)))
	}
	want := []string{"new web", "\r", "unshare uts", "\t", "\x1b[A", "\x04", "\x1b[D", "\x1b[D", "\x1b[1;5C", "x", "\x1bOH", "\x1b[3~", "\x1bb", "\x1b"}
	if strings.Join(keys, "|") != strings.Join(want, "|") {
		t.Errorf("keys %q, want %q", keys, want)
	}
}

// waitPidfd waits until the process behind a pidfd has ended, or d has
// passed. poll(2) is restarted after EINTR: the Go runtime interrupts
// its own threads with SIGURG to preempt goroutines, and an interrupted
// poll says nothing about the process (the VM run took one such EINTR
// after 5.9 s for a timeout).
func waitPidfd(fd int, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		left := max(time.Until(deadline), 0)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(left.Milliseconds()))
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return err
		case n == 1:
			return nil
		case left == 0:
			return fmt.Errorf("timed out")
		}
	}
}

// Ctrl-Z while `exec` runs never stops stepbox (and its live view) with
// the boxes running on: it says where job control is, and Ctrl-C still
// ends the command (a fresh learner landed in the host's shell).
func TestCtrlZDuringExecNeverStopsStepbox(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	p.startBox(t.TempDir())
	p.mark()
	p.line("exec sleep 30")
	time.Sleep(500 * time.Millisecond)
	p.keys("C-z")
	p.waitFor("Ctrl-Z: stepbox's commands have no job control")
	p.keys("C-c")
	screen := p.waitFor("web[uts,mnt,pid] ▸")
	if strings.Contains(screen, "Stopped") {
		t.Fatalf("Ctrl-Z stopped stepbox:\n%s", screen)
	}
	p.mark()
	p.line("exec echo still-here")
	p.waitFor("still-here")
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after Ctrl-Z")
}

// between is the text of s after the first from and before the next to.
func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

// After `clear` and Ctrl-L, a line typed at the prompt is once in the
// terminal's scrollback: tmux copies the screen into its history when
// the screen is erased from the top-left corner (scroll-on-clear), and
// go-prompt erases a line it ends there.
func TestClearLeavesEachLineOnceInTheScrollback(t *testing.T) {
	p := newTmuxPane(t)
	dir := t.TempDir()
	p.stepbox(dir, stepboxBinary(t)+" --state-dir "+dir+"; echo STEPBOX-EXIT=$?")
	p.waitFor("stepbox ▸")
	p.line("clear")
	time.Sleep(300 * time.Millisecond)
	p.line("!echo one-$((6*7))")
	p.waitFor("one-42\n")
	p.keys("C-l")
	time.Sleep(300 * time.Millisecond)
	p.line("!echo two-$((6*7))")
	p.waitFor("two-42\n")
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	all := strings.Join(p.lines(), "\n")
	for _, l := range []string{"▸ !echo one-$((6*7))", "▸ !echo two-$((6*7))"} {
		if n := strings.Count(all, l); n != 1 {
			t.Errorf("%q is %d times in the pane and its history:\n%s", l, n, all)
		}
	}
}
