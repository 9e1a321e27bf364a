package repl

import (
	"strings"
	"testing"
)

// A box command's output cannot draw over what is on the learner's
// screen: a cursor moved up or to a row, or a cleared screen, would let
// it overwrite stepbox's prompt and earlier lines with text that reads
// as stepbox's own. Those sequences are shown escaped, on the box's own
// line (primitives.TerminalFilter); its colours still pass.
func TestABoxCommandCannotDrawOverTheLinesAboveItsOutput(t *testing.T) {
	p, _, _ := paneTerminal(t)
	p.line("exec echo EARLIER-LINE")
	p.waitFor("EARLIER-LINE\n")
	p.mark()
	p.line(`exec printf 'OUT\n\033[2A\033[1;1H\033[2J\033[32mFAKE-%s%s\033[0m\n' 4 2`)
	s := p.waitFor("FAKE-42", "web[uts,mnt,pid] ▸")
	if !strings.Contains(s, "OUT\n"+`\x1b[2A\x1b[1;1H\x1b[2JFAKE-42`+"\n") {
		t.Errorf("the cursor moves and the clear should be shown escaped, on the box's line:\n%s", s)
	}
	all := strings.Join(p.lines(), "\n")
	for _, kept := range []string{"EARLIER-LINE", "web[uts,mnt,pid] ▸ exec printf 'OUT"} {
		if !strings.Contains(all, kept) {
			t.Errorf("the box's output drew over %q:\n%s", kept, all)
		}
	}
	// Its colour reached the terminal as a colour, not as text.
	if screen := p.tmux("capture-pane", "-p", "-e", "-t", "0"); !strings.Contains(screen, "FAKE-42") || strings.Contains(screen, `\x1b[32m`) {
		t.Errorf("the box's colour should pass as a colour:\n%q", screen)
	}
}
