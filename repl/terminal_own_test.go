package repl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// paneTerminal starts stepbox with box web in a pane of the test's own
// and opens the pane's tty, the learner's terminal: its path, and a
// function that reads its settings and size.
func paneTerminal(t *testing.T) (*tmuxPane, string, func() (*unix.Termios, *unix.Winsize)) {
	t.Helper()
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	p.startBox(t.TempDir())
	path := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{pane_tty}"))
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return p, path, func() (*unix.Termios, *unix.Winsize) {
		t.Helper()
		tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
		if err != nil {
			t.Fatalf("ioctl(%s, TCGETS): %v", path, err)
		}
		ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
		if err != nil {
			t.Fatalf("ioctl(%s, TIOCGWINSZ): %v", path, err)
		}
		return tio, ws
	}
}

// A box command never holds a descriptor of the learner's terminal: exec
// and enter's commands write through pipes and read /dev/null, so a box
// can neither rewrite the terminal's settings and size nor leave a
// process behind that reads what is typed at the prompt afterwards
// (ut21 N1, N11).
func TestBoxCommandsNeverHoldTheLearnersTerminal(t *testing.T) {
	p, tty, state := paneTerminal(t)
	tioBefore, wsBefore := state()

	for _, how := range []string{"exec", "enter --"} {
		p.mark()
		p.line(how + ` sh -c 'for f in 0 1 2; do echo "FD$f=$(readlink /proc/self/fd/$f)"; done; echo FDS-$((6*7))'`)
		s := p.waitFor("FDS-42\n", "web[uts,mnt,pid] ▸")
		if strings.Contains(s, "="+tty) || !strings.Contains(s, "FD1=pipe:") {
			t.Errorf("%s: the command's fds 0-2 should be pipes (and /dev/null), never the learner's %s:\n%s", how, tty, s)
		}
	}

	p.mark()
	p.line(`exec sh -c 'stty rows 5 cols 30 <&1; stty -echo -icanon <&2; echo STTY-$((6*7))'`)
	p.waitFor("STTY-42", "web[uts,mnt,pid] ▸")
	tioAfter, wsAfter := state()
	if *wsAfter != *wsBefore {
		t.Errorf("a box command resized the learner's terminal: %+v, was %+v", *wsAfter, *wsBefore)
	}
	if tioAfter.Lflag&(unix.ECHO|unix.ICANON) != tioBefore.Lflag&(unix.ECHO|unix.ICANON) {
		t.Errorf("a box command changed the learner's terminal's settings: lflag %#x, was %#x", tioAfter.Lflag, tioBefore.Lflag)
	}

	// The attacker's thief: a background process reading fd 2 (and 0).
	stolen := filepath.Join(t.TempDir(), "stolen")
	p.mark()
	p.line(`exec sh -c '(dd bs=1 count=40 <&2 >>` + stolen + ` 2>/dev/null; dd bs=1 count=40 >>` + stolen + ` 2>/dev/null) & echo THIEF-$((6*7))'`)
	p.waitFor("THIEF-42", "web[uts,mnt,pid] ▸")
	time.Sleep(300 * time.Millisecond)
	p.mark()
	p.line("!echo typed-at-the-$((6*7))-prompt")
	p.waitFor("typed-at-the-42-prompt\n", "web[uts,mnt,pid] ▸")
	if b, _ := os.ReadFile(stolen); len(b) > 0 {
		t.Errorf("a process the box left read what the learner typed: %q", b)
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}

// `sh` gets a terminal of its own, as `docker run -it` gives: its
// controlling terminal is a pty the session made, never the learner's;
// the learner's window size is passed on; and once the shell exits, a
// process it left behind on that pty cannot read what is typed at
// stepbox's prompt.
func TestShInABoxHasATerminalOfItsOwn(t *testing.T) {
	p, tty, state := paneTerminal(t)
	tioBefore, _ := state()

	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	p.mark()
	p.line(`echo "TTY=$(tty) NR=$(cut -d' ' -f7 /proc/self/stat) SIZE=$(stty size)"; echo SH-$((6*7))`)
	s := p.waitFor("SH-42\n")
	if !strings.Contains(s, "TTY=/dev/pts/") || strings.Contains(s, "TTY="+tty+" ") || strings.Contains(s, "NR=0 ") {
		t.Errorf("the box's shell should have a pty of its own (not %s) as its controlling terminal:\n%s", tty, s)
	}
	if !strings.Contains(s, "SIZE=40 120") {
		t.Errorf("the box's terminal should have the learner's size (40 120):\n%s", s)
	}
	p.tmux("resize-window", "-t", "0", "-x", "100", "-y", "30")
	p.mark()
	p.line(`echo "SIZE=$(stty size)"; echo RESIZED-$((6*7))`)
	if s := p.waitFor("RESIZED-42\n"); !strings.Contains(s, "SIZE=30 100") {
		t.Errorf("the learner's new window size did not reach the box's terminal (want 30 100):\n%s", s)
	}

	stolen := filepath.Join(t.TempDir(), "stolen")
	p.line(`setsid sh -c "sleep 1; dd bs=1 count=40 >>` + stolen + ` 2>/dev/null" & exit`)
	p.waitFor("back in stepbox", "web[uts,mnt,pid] ▸")
	time.Sleep(1500 * time.Millisecond)
	p.mark()
	p.line("!echo typed-after-$((6*7))-sh")
	p.waitFor("typed-after-42-sh\n", "web[uts,mnt,pid] ▸")
	if b, _ := os.ReadFile(stolen); len(b) > 0 {
		t.Errorf("a process the box's shell left read what the learner typed: %q", b)
	}
	// The prompt's line shows before go-prompt has made the terminal raw
	// again: the settings are looked at until they are back, for a while.
	tioAfter, _ := state()
	for end := time.Now().Add(3 * time.Second); tioAfter.Lflag&(unix.ECHO|unix.ICANON) != tioBefore.Lflag&(unix.ECHO|unix.ICANON) && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
		tioAfter, _ = state()
	}
	if tioAfter.Lflag&(unix.ECHO|unix.ICANON) != tioBefore.Lflag&(unix.ECHO|unix.ICANON) {
		t.Errorf("after sh, the learner's terminal's settings are not as before: lflag %#x, was %#x", tioAfter.Lflag, tioBefore.Lflag)
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after sh")
}
