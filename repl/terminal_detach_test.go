package repl

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sleepingFor lists the host PIDs running `sleep SECS` (a number no other
// test uses).
func sleepingFor(secs string) []string {
	var pids []string
	all, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range all {
		if b, err := os.ReadFile(f); err == nil && bytes.Equal(b, []byte("sleep\x00"+secs+"\x00")) {
			pids = append(pids, filepath.Base(filepath.Dir(f)))
		}
	}
	return pids
}

// A box program that sets its terminal raw and ignores every signal
// cannot keep the learner: Ctrl-P Ctrl-Q is the session's, kills it and
// comes back to a working prompt (ut22 M2); a Ctrl-P on its own, or
// followed by another key, still reaches the box.
func TestDetachKeysGiveTheTerminalBackFromARawBoxProgram(t *testing.T) {
	p, _, _ := paneTerminal(t)

	p.mark()
	p.line("sh")
	p.waitFor("Ctrl-P Ctrl-Q kills it", "[web] ")
	p.mark()
	p.line(`stty raw -echo; head -c 3 | od -An -tx1 | tr -d ' ' | sed 's/^/KEYS-/'; stty sane`)
	p.keys("C-p")
	time.Sleep(1500 * time.Millisecond) // longer than detachWait: the Ctrl-P goes on alone
	p.keys("C-p", "a")
	if s := p.waitFor("KEYS-10"); !strings.Contains(s, "KEYS-101061") {
		t.Errorf("a Ctrl-P without Ctrl-Q should reach the box (10 10 61):\n%s", s)
	}

	p.mark()
	p.line(`stty -isig -icanon; trap '' INT QUIT TSTP HUP TERM; exec sleep 1087`)
	p.waitSleeping("1087")
	p.keys("C-c", "C-d", "C-z", "C-\\")
	time.Sleep(300 * time.Millisecond)
	p.keys("C-p", "C-q")
	p.waitFor("Ctrl-P Ctrl-Q killed the box's shell", "web[uts,mnt,pid] ▸")
	if left := sleepingFor("1087"); len(left) > 0 {
		t.Errorf("the box's program outlived the detach keys: PIDs %v", left)
	}
	p.mark()
	p.line("!echo prompt-works-$((6*7))")
	p.waitFor("prompt-works-42\n", "web[uts,mnt,pid] ▸")

	// enter's shell detaches the same way.
	p.mark()
	p.line("enter")
	p.waitFor("kills it and comes back", "\n#")
	p.line(`trap '' INT QUIT TSTP HUP TERM; stty -isig; exec sleep 1087`)
	time.Sleep(500 * time.Millisecond)
	p.keys("C-p", "C-q")
	p.waitFor("Ctrl-P Ctrl-Q killed the box's shell", "web[uts,mnt,pid] ▸")
	time.Sleep(200 * time.Millisecond)
	if left := sleepingFor("1087"); len(left) > 0 {
		t.Errorf("enter's program outlived the detach keys: PIDs %v", left)
	}
	// Killed from outside: no ✓, the signal named, on a line of its own (ut23 F8).
	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	p.line(`printf 'PROMPT-%s%s' 4 2; exec sleep 1088`)
	deadline := time.Now().Add(10 * time.Second)
	for len(sleepingFor("1088")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range sleepingFor("1088") {
		if err := exec.Command("kill", "-KILL", pid).Run(); err != nil {
			t.Fatalf("kill -KILL %s: %v", pid, err)
		}
	}
	s := p.waitFor("PROMPT-42\n! back in stepbox: the box's shell was killed by SIGKILL\n", "web[uts,mnt,pid] ▸")
	if strings.Contains(s, "✓ back") {
		t.Errorf("a shell killed from outside is no clean exit:\n%s", s)
	}

	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after the detach keys")
}

// What a terminal answers to a box command's query never lands in
// stepbox's prompt (ut23 F4, ut29 F2), nor does a box retitle the
// terminal: exec's and enter's output, stdout and stderr, reaches it
// filtered (TerminalFilter), the queries and the title shown escaped,
// the colours as written; after sh the answers are discarded and the
// modes a program left on turned off.
func TestTerminalQueriesOfABoxNeverTypeIntoThePrompt(t *testing.T) {
	p, _, _ := paneTerminal(t)
	title := func() string { return strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{pane_title}")) }
	for _, c := range []struct{ line, shown string }{
		{`exec printf 'Q\033[6n\033[c\033]11;?\007-%s%s\n' 4 2`, `Q\x1b[6n\x1b[c\x1b]11;?\x07-42`},
		{`exec sh -c 'printf "E\033[c\033[6n\033[>c" >&2; echo -$((6*7))'`, `E\x1b[c\x1b[6n\x1b[>c-42`},
		{`enter -- printf 'Q\033[6n\033[c-%s%s\n' 4 2`, `Q\x1b[6n\x1b[c-42`},
		{`enter -- sh -c 'printf "E\033[5n\033[>c" >&2; echo -$((6*7))'`, `E\x1b[5n\x1b[>c-42`},
	} {
		p.mark()
		p.line(c.line)
		s := p.waitFor("-42\n", "web[uts,mnt,pid] ▸")
		time.Sleep(500 * time.Millisecond)
		if last := p.lines()[len(p.lines())-1]; last != "web[uts,mnt,pid] ▸" {
			t.Errorf("%s: the prompt line should be empty, is %q", c.line, last)
		}
		if !strings.Contains(s, c.shown+"\n") {
			t.Errorf("%s: the queries should be shown escaped (%s):\n%s", c.line, c.shown, s)
		}
	}
	// A title, read while the command runs (the prompt sets its own
	// after, go-prompt clears it before).
	p.mark()
	p.line(`exec sh -c 'printf "\033]0;BOX-TITLE\007\033]2;BOX-TITLE2\033\\\\"; echo T-$((6*7)); sleep 2'`)
	p.waitFor("T-42\n")
	if got := title(); strings.Contains(got, "BOX-TITLE") {
		t.Errorf("while the box's command runs, the terminal's title should be stepbox's, is the box's %q", got)
	}
	if s := p.waitFor("T-42\n", "web[uts,mnt,pid] ▸"); !strings.Contains(s, `\x1b]0;BOX-TITLE\x07\x1b]2;BOX-TITLE2\x1b\\T-42`) {
		t.Errorf("the box's titles should be shown escaped:\n%s", s)
	}
	// Colours pass as the box wrote them (ls --color).
	p.mark()
	p.line(`exec printf '\033[01;34mBLUE-%s%s\033[0m\n' 4 2`)
	p.waitFor("BLUE-42\n", "web[uts,mnt,pid] ▸")
	if s := p.tmux("capture-pane", "-p", "-e", "-t", "0"); !strings.Contains(s, "\x1b[1m\x1b[34mBLUE-42") && !strings.Contains(s, "\x1b[1;34mBLUE-42") {
		t.Errorf("the box's colours should reach the terminal (capture-pane -e):\n%q", s)
	}
	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	p.line(`printf '\033[6n\033[?1049h\033[?25l\033[?1003h\033[?1005h'; printf no-newline; exit 5`)
	s := p.waitFor("back in stepbox: the box's shell exited with status 5", "web[uts,mnt,pid] ▸")
	time.Sleep(500 * time.Millisecond)
	if last := p.lines()[len(p.lines())-1]; last != "web[uts,mnt,pid] ▸" {
		t.Errorf("after sh, the prompt line should be empty, is %q", last)
	}
	if strings.Contains(s, "no-newline! back") || strings.Contains(s, "no-newline✓") {
		t.Errorf("stepbox's report should start on a line of its own:\n%s", s)
	}
	if alt := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{alternate_on} #{cursor_flag} #{mouse_all_flag} #{mouse_utf8_flag}")); alt != "0 1 0 0" {
		t.Errorf("after sh, the alternate screen should be off, the cursor on and mouse reports off (alternate_on cursor_flag mouse_all_flag mouse_utf8_flag): %q", alt)
	}

	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}

// pasteUnread pastes some 120 KB of comment lines into the pane, as a
// terminal pastes: far more than a box's terminal takes while its
// program is not reading (ut28 F3).
func (p *tmuxPane) pasteUnread() {
	p.t.Helper()
	var b strings.Builder
	for i := 0; b.Len() < 120<<10; i++ {
		fmt.Fprintf(&b, "# pasted line %05d %s\n", i, strings.Repeat("x", 80))
	}
	f := filepath.Join(p.t.TempDir(), "paste")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.tmux("load-buffer", "-b", "unread", f)
	p.tmux("paste-buffer", "-b", "unread", "-t", "0")
	time.Sleep(time.Second)
}

// waitSleeping waits until the box runs `sleep secs`.
func (p *tmuxPane) waitSleeping(secs string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(sleepingFor(secs)) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(sleepingFor(secs)) == 0 {
		p.t.Fatalf("the box's sleep %s never started:\n%s", secs, p.screen())
	}
}

// A paste the box's program does not read never holds up the learner's
// keys (ut28 F3): Ctrl-C still reaches the program at once, and the
// shell answers the next line, not the paste.
func TestCtrlCReachesABoxProgramThatDoesNotReadAPaste(t *testing.T) {
	p, _, _ := paneTerminal(t)
	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	p.line("sleep 1091")
	p.waitSleeping("1091")
	p.pasteUnread()
	p.keys("C-c")
	deadline := time.Now().Add(5 * time.Second)
	for len(sleepingFor("1091")) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := sleepingFor("1091"); len(left) > 0 {
		t.Fatalf("Ctrl-C behind a paste never reached the box's sleep (PIDs %v):\n%s", left, p.screen())
	}
	p.mark()
	p.line("echo shell-answers-$((6*7))")
	s := p.waitWithin(5*time.Second, "shell-answers-42\n")
	if strings.Contains(s, "# pasted line") {
		t.Errorf("what was pasted before Ctrl-C should be dropped, as the line discipline drops it:\n%s", s)
	}
	p.line("exit")
	p.waitFor("back in stepbox", "web[uts,mnt,pid] ▸")
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after Ctrl-C behind a paste")
}

// Nor does such a paste hold up the detach keys, in sh or enter's shell.
func TestDetachKeysLeaveABoxProgramThatDoesNotReadAPaste(t *testing.T) {
	p, _, _ := paneTerminal(t)
	for i, enter := range []string{"sh", "enter"} {
		secs := strconv.Itoa(1092 + i)
		p.mark()
		p.line(enter)
		p.waitFor("kills it", map[string]string{"sh": "[web] ", "enter": "\n#"}[enter])
		p.line("sleep " + secs)
		p.waitSleeping(secs)
		p.pasteUnread()
		p.keys("C-p", "C-q")
		p.waitWithin(5*time.Second, "Ctrl-P Ctrl-Q killed the box's shell", "web[uts,mnt,pid] ▸")
		if left := sleepingFor(secs); len(left) > 0 {
			t.Errorf("%s: the box's program outlived the detach keys: PIDs %v", enter, left)
		}
		p.mark()
		p.line("!echo prompt-works-$((6*7))")
		p.waitWithin(5*time.Second, "prompt-works-42\n", "web[uts,mnt,pid] ▸")
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	p.saneTerminal("after the detach keys behind a paste")
}

// Nor does it keep the session from ending when the learner's terminal
// closes: the relay's end never waits on the box's terminal.
func TestClosingTheTerminalBehindAPasteTheBoxDoesNotReadTearsDown(t *testing.T) {
	p, _, _ := paneTerminal(t)
	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	p.line("sleep 1094")
	p.waitSleeping("1094")
	p.pasteUnread()
	for _, problem := range p.end(10 * time.Second) {
		t.Error(problem)
	}
	if left := sleepingFor("1094"); len(left) > 0 {
		t.Errorf("the box's program outlived the session: PIDs %v", left)
	}
}

// After sh the learner's terminal is as stepbox draws in, whatever modes
// the box's shell left set (ut32 F3): the line-drawing set shifted in,
// a scroll region with origin mode, insert mode, autowrap off and
// reverse video once turned every later panel into glyphs squeezed into
// a few lines. And the prompt stays below the shell's output. Origin mode
// the shell set and saved with the cursor (DECSC) stays off, also after a
// later DECRC, which restored it.
func TestShLeavesNoCharsetRegionOrInsertModeBehind(t *testing.T) {
	p, path, _ := paneTerminal(t)
	for i := 0; i < 5; i++ {
		p.line("exec echo filler") // the cursor is well below the top line
	}
	p.waitFor("web[uts,mnt,pid] ▸")
	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	// ut33 F1: and the default colours both #123456 (every later line
	// invisible), the palette and cursor colour, margins, mouse modes
	// tmux ignores, LNM, KAM and no tab stops.
	p.line(`printf '\033(0\033)0\016\033[?5h\033[3;8r\033[?25l\033[4h\033[?7l\033[?1h\033=\033]10;#123456\007\033]11;#123456\033\\\033]4;6;#123456\007\033]12;#123456\007\033[?69h\033[5;20s\033[?9h\033[?1001h\033[?1016h\033[20h\033[2h\033[3g\033[?6h\0337'; exit`)
	p.waitFor("back in stepbox", "web[uts,mnt,pid] ▸")
	flags := "#{cursor_flag} #{insert_flag} #{wrap_flag} #{keypad_cursor_flag} #{keypad_flag} #{origin_flag} #{scroll_region_upper}-#{scroll_region_lower}"
	if got := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", flags)); got != "1 0 1 0 0 0 0-39" {
		t.Errorf("after sh, cursor on, insert off, wrap on, keypads normal, origin mode off and the whole screen as scroll region (%s) should be %q, are %q", flags, "1 0 1 0 0 0 0-39", got)
	}
	tty, err := os.OpenFile(path, os.O_WRONLY|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{pane_fg} #{pane_bg}")); got != "default default" {
		t.Errorf("after sh, the pane's default colours (#{pane_fg} #{pane_bg}) should be the terminal's, %q, are %q", "default default", got)
	}
	p.mark()
	tty.WriteString("\r\ttab-done") // a tab from the first column: to the stop at column 8
	p.waitFor("tab-done")
	if x := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{cursor_x}")); x != "16" {
		t.Errorf("after sh, a tab should stop at column 8 (and \"tab-done\" end at column 16), the cursor is at column %s", x)
	}
	p.mark()
	tty.WriteString("\x1b8decrc-done") // DECRC, as a later panel or the terminal may
	tty.Close()
	p.waitFor("decrc-done")
	if got := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{origin_flag}")); got != "0" {
		t.Errorf("after sh and a DECRC, origin mode should be off (#{origin_flag} 0), is %q", got)
	}
	if y := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{cursor_y}")); y == "0" {
		t.Errorf("after sh, the cursor should stay below the shell's output, is on the top line")
	}
	p.mark()
	p.line("boxes")
	s := p.waitFor("running", "web[uts,mnt,pid] ▸")
	if !strings.Contains(s, "web") || strings.ContainsAny(s, "␉⎺⎽␍") { // b, o, s, r in the line-drawing set
		t.Errorf("after sh, the boxes panel should be drawn in ASCII:\n%s", s)
	}
	if e := p.tmux("capture-pane", "-p", "-e", "-t", "0"); strings.Contains(e, "\x0e") || strings.Contains(e, "\x1b(0") {
		t.Errorf("after sh, the panel should not be drawn in the line-drawing set (capture-pane -e):\n%q", e)
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}
