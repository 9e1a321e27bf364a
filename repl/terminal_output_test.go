package repl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A recorded session filters a box command's output as an unrecorded
// one does, on the terminal and in the recording: the recording's tee
// once hid the terminal's file from the filter, and a box's queries
// reached the terminal raw, its answers the prompt (ut29 F2).
func TestRecordedSessionKeepsABoxsQueriesFromTheTerminal(t *testing.T) {
	needRoot(t)
	hostUnchanged(t)
	p := newTmuxPane(t)
	dir := t.TempDir()
	cast := filepath.Join(t.TempDir(), "session.cast")
	p.mark()
	p.stepbox(dir, stepboxBinary(t)+" --state-dir "+dir+" --record "+cast+"; echo STEPBOX-EXIT=$?")
	p.waitFor("stepbox ▸")
	p.line("new rec")
	p.waitFor("rec[] ▸")
	p.mark()
	p.line(`exec printf 'Q\033[c\033[6n\033[>c\033]0;REC-TITLE\007-%s%s' 4 2`)
	s := p.waitFor("-42", "rec[] ▸")
	time.Sleep(500 * time.Millisecond)
	if last := p.lines()[len(p.lines())-1]; last != "rec[] ▸" {
		t.Errorf("the prompt line should be empty, is %q", last)
	}
	if !strings.Contains(s, `Q\x1b[c\x1b[6n\x1b[>c\x1b]0;REC-TITLE\x07-42`+"\n") {
		t.Errorf("the queries and the title should be shown escaped, the prompt on a line of its own:\n%s", s)
	}
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
	b, err := os.ReadFile(cast)
	if err != nil {
		t.Fatal(err)
	}
	// JSON writes ESC as \u001b; the filter's escape is the text \x1b.
	if rec := string(b); strings.Contains(rec, `\u001b[6n`) || strings.Contains(rec, `\u001b]0;REC`) || !strings.Contains(rec, `Q\\x1b[c\\x1b[6n`) {
		t.Errorf("the recording should hold the box's queries and title escaped, never raw:\n%s", rec)
	}
}

// What the terminal answers to a query stepbox passed on unfiltered (a
// host command's, which has the terminal as the learner gave it) is no
// key: the prompt's reader drops it, and the next command line starts
// empty. Keys typed while the command ran are kept.
func TestTerminalAnswersToAHostCommandNeverReachThePromptLine(t *testing.T) {
	p, _, _ := paneTerminal(t)
	p.mark()
	p.line(`!printf 'H\033[c\033[6n\033[>c\033]11;?\007-%s%s\n' 4 2`)
	// The terminal's line discipline may echo the answers while the
	// command runs (^[[?1;2c…), after "-42" or at the start of the next
	// line, as the terminal's timing has it (on a slow VM, the former):
	// wait for the output and the prompt, then ask only that the
	// prompt's line ends where the prompt does.
	p.waitFor("-42", "web[uts,mnt,pid] ▸")
	time.Sleep(500 * time.Millisecond)
	if last := p.lines()[len(p.lines())-1]; !strings.HasSuffix(last, "web[uts,mnt,pid] ▸") {
		t.Errorf("the prompt's line should hold nothing typed, is %q", last)
	}
	p.mark()
	p.line("!sleep 1")
	time.Sleep(300 * time.Millisecond)
	p.keys("-l", "boxes")
	// Under the line, go-prompt offers the command's completion.
	p.waitFor("web[uts,mnt,pid] ▸ boxes\n")
	p.keys("C-u")
	p.line("exit")
	p.waitFor("STEPBOX-EXIT=0")
}
