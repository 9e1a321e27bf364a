package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives"
)

// stoppedWith is the PID of the process whose last argument is name
// (stopsItself's $0), once it is stopped (state T), or 0 once within has passed.
func stoppedWith(name string, within time.Duration) int {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		all, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range all {
			b, err := os.ReadFile(f)
			if err != nil || !bytes.HasSuffix(b, []byte("\x00"+name+"\x00")) {
				continue
			}
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			if p, err := procfs.NewProc(pid); err == nil {
				if st, err := p.Stat(); err == nil && st.State == "T" {
					return pid
				}
			}
		}
	}
	return 0
}

// stopsItself is a command that stops itself at once, as the box's own
// /bin/hostname did (`kill -STOP $$`), with name as its $0 for stoppedWith.
func stopsItself(name string) string {
	return fmt.Sprintf(`sh -c 'kill -STOP $$; echo continued' %s`, name)
}

// A box can stop the command of `enter -- CMD` (its own planted
// /bin/hostname that does `kill -STOP $$`): the learner's Ctrl-C, which
// reaches stepbox and the enter process both (stepbox's process group),
// ends it all the same, and says it was interrupted; it waited for ever
// with Ctrl-C and Ctrl-\ ignored (ut33 F3).
func TestCtrlCEndsAnEnterCommandTheBoxStopped(t *testing.T) {
	sh, out := lessonShell(t)
	execute(t, sh, out, "new web", "unshare uts pid")
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close(); tty.Close() })
	if sh.Terminal, err = primitives.OpenTerminal(tty); err != nil {
		t.Fatal(err)
	}
	sh.signals = make(chan os.Signal, 4)
	done := make(chan error, 1)
	go func() { done <- sh.Execute(context.Background(), "enter -- "+stopsItself("stopped-6021")) }()
	stopped := stoppedWith("stopped-6021", 20*time.Second)
	if stopped == 0 {
		t.Fatalf("enter's command never stopped:\n%s", out)
	}
	p, err := procfs.NewProc(stopped)
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	// With a terminal, the notice offers its Ctrl-C.
	for wait := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), "is stopped") && time.Now().Before(wait); {
		time.Sleep(50 * time.Millisecond)
	}
	if said := strings.Join(strings.Fields(out.String()), " "); !strings.Contains(said, "Ctrl-C ends it (SIGKILL to its process group)") {
		t.Errorf("with a terminal, the notice does not offer Ctrl-C:\n%s", out)
	}
	// and leaves the command be: the learner is there to press it.
	time.Sleep(stoppedEnd + time.Second)
	if st, err := p.Stat(); err != nil || st.State != "T" {
		got := "gone"
		if err == nil {
			got = st.State
		}
		t.Errorf("with a terminal, the stopped command was ended after %s (state %q), not left to Ctrl-C", stoppedEnd, got)
	}
	// The terminal's Ctrl-C, as it reaches stepbox's process group: the
	// enter process, the command's parent, and stepbox.
	if err := unix.Kill(st.PPID, unix.SIGINT); err != nil {
		t.Fatal(err)
	}
	sh.signals <- syscall.SIGINT
	select {
	case err = <-done:
	case <-time.After(15 * time.Second):
		unix.Kill(stopped, unix.SIGKILL) // the old code's wait: let it go
		<-done
		t.Fatalf("enter waited on after Ctrl-C for its stopped command:\n%s", out)
	}
	var ee *ExitError
	if !errors.As(err, &ee) || !interruptedBy(err) {
		t.Fatalf("enter ended with %v, want interrupted by Ctrl-C:\n%s", err, out)
	}
	if want := "interrupted: enter sh (SIGINT, then killed by SIGKILL)"; err.Error() != want {
		t.Errorf("enter said %q, want %q", err, want)
	}
	if strings.Contains(out.String(), "continued") {
		t.Errorf("the stopped command went on:\n%s", out)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", stopped)); err == nil {
		t.Errorf("the stopped command (PID %d) outlived enter", stopped)
	}
}

// A stopped command of `exec` or `enter -- CMD` never exits: stepbox says
// so once, naming its PIDs, and what ends it or lets it go on, rather
// than look hung (ut33 F3). A script's Ctrl-C (ctx) then ends it, before
// stoppedEnd would.
func TestExecAndEnterSayTheirCommandIsStopped(t *testing.T) {
	sh, out := lessonShell(t)
	execute(t, sh, out, "new web", "unshare uts pid")
	for i, how := range []string{"exec", "enter --"} {
		name := fmt.Sprintf("stopped-613%d", i)
		from := out.Len()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Execute(ctx, how+" "+stopsItself(name)) }()
		stopped := stoppedWith(name, 20*time.Second)
		if stopped == 0 {
			cancel()
			t.Fatalf("%s: the command never stopped:\n%s", how, out)
		}
		wait := time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String()[from:], "is stopped") && time.Now().Before(wait) {
			time.Sleep(50 * time.Millisecond)
		}
		said := out.String()[from:]
		cancel()
		select {
		case err := <-done:
			if !interruptedBy(err) {
				t.Errorf("%s: ended with %v, want interrupted:\n%s", how, err, out)
			}
		case <-time.After(15 * time.Second):
			unix.Kill(stopped, unix.SIGKILL)
			<-done
			t.Errorf("%s: waited on after the script's Ctrl-C for its stopped command:\n%s", how, out)
		}
		want := fmt.Sprintf("host PID %d) is stopped by a signal (state T", stopped)
		if !strings.Contains(strings.Join(strings.Fields(said), " "), want) {
			t.Errorf("%s: no notice that the command is stopped (want %q):\n%s", how, want, said)
		}
		// No terminal here: the notice offers no Ctrl-C, it says when
		// stepbox ends the command itself (ut34 F4).
		if strings.Contains(said, "Ctrl-C ends it") {
			t.Errorf("%s: the notice offers Ctrl-C without a terminal:\n%s", how, said)
		}
		for _, w := range []string{"stepbox ends it itself (SIGKILL to its process group) once it has stayed stopped for " + stoppedEnd.String(), fmt.Sprintf("`kill -CONT %d`", stopped)} {
			if !strings.Contains(strings.Join(strings.Fields(said), " "), w) {
				t.Errorf("%s: the notice does not say %q:\n%s", how, w, said)
			}
		}
		if n := strings.Count(said, "is stopped"); n > 1 {
			t.Errorf("%s: the notice came %d times:\n%s", how, n, said)
		}
	}
}

// SIGTERM while a script's `enter` waits for a command the box stopped:
// the session tears down and exits, and no later line of the script runs
// meanwhile (the next one ran, and failed on the box half torn down:
// "open /proc/N/root/: no such file", ut33 F3).
func TestSIGTERMDuringAStoppedEnterRunsNoLaterLine(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	dir := t.TempDir()
	var out bytes.Buffer
	cmd, w := startSessionTo(t, dir, "new web\nunshare uts pid\n", &out)
	defer w.Close()
	w.WriteString("-enter -- " + stopsItself("stopped-7751") + "\n-exec sh -c 'echo next-line-ran'\nboxes\n")
	if stoppedWith("stopped-7751", 20*time.Second) == 0 {
		t.Fatal("enter's command never stopped")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the session was still running 15 s after SIGTERM:\n%s", &out)
	}
	assertNoSessions(t, dir)
	if s := out.String(); strings.Contains(s, "next-line-ran") || strings.Contains(s, "> boxes") {
		t.Errorf("the script went on after SIGTERM:\n%s", s)
	}
}
