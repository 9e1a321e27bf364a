package repl

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	deadline := time.Now().Add(10 * time.Second)
	for len(sleepingFor("1087")) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if len(sleepingFor("1087")) == 0 {
		t.Fatalf("the box's sleep 1087 never started:\n%s", p.screen())
	}
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
	deadline = time.Now().Add(10 * time.Second)
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
// stepbox's prompt (ut23 F4): exec's output is filtered; after sh the
// answers are discarded.
func TestTerminalQueriesOfABoxNeverTypeIntoThePrompt(t *testing.T) {
	p, _, _ := paneTerminal(t)
	for _, line := range []string{`exec printf 'Q\033[6n\033[c\033]11;?\007-%s%s\n' 4 2`, `enter -- printf 'Q\033[6n\033[c-%s%s\n' 4 2`} {
		p.mark()
		p.line(line)
		p.waitFor("Q-42\n", "web[uts,mnt,pid] ▸")
		time.Sleep(500 * time.Millisecond)
		if last := p.lines()[len(p.lines())-1]; last != "web[uts,mnt,pid] ▸" {
			t.Errorf("%s: the prompt line should be empty, is %q", line, last)
		}
	}
	p.mark()
	p.line("sh")
	p.waitFor("[web] ")
	p.line(`printf '\033[6n\033[?1049h\033[?25l'; printf no-newline; exit 5`)
	s := p.waitFor("back in stepbox: the box's shell exited with status 5", "web[uts,mnt,pid] ▸")
	time.Sleep(500 * time.Millisecond)
	if last := p.lines()[len(p.lines())-1]; last != "web[uts,mnt,pid] ▸" {
		t.Errorf("after sh, the prompt line should be empty, is %q", last)
	}
	if strings.Contains(s, "no-newline! back") || strings.Contains(s, "no-newline✓") {
		t.Errorf("stepbox's report should start on a line of its own:\n%s", s)
	}
	if alt := strings.TrimSpace(p.tmux("display-message", "-p", "-t", "0", "#{alternate_on} #{cursor_flag}")); alt != "0 1" {
		t.Errorf("after sh, the alternate screen should be off and the cursor on (alternate_on cursor_flag): %q", alt)
	}

	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}
