package repl

import (
	"testing"
	"time"
)

// What the terminal types on its own (its answers to queries, mouse
// reports) never reaches the prompt's line; every key does, the Escape
// and Alt keys among them, and a report cut between two reads is dropped
// whole.
func TestPromptDropsTheTerminalsReportsAndKeepsKeys(t *testing.T) {
	now := time.Now()
	for _, c := range []struct {
		reads []string
		want  string
	}{
		{[]string{"ls\x1b[?1;2c\x1b[24;1R\x1b[>84;0;0c\x1b[0n\x1b[?2004;2$y -l\r"}, "ls -l\r"},
		{[]string{"a\x1b]11;rgb:0000/0000/0000\x07\x1b]52;c;cm0gLXJm\x1b\\b"}, "ab"},
		{[]string{"\x1bP1$r0m\x1b\\\x1bP1+r544e=787465726d\x1b\\\x1b_Gi=1;OK\x1b\\c"}, "c"},
		{[]string{"\x1b[8;40;120t\x1b[<0;10;5M\x1b[?1u\x1b[=c"}, ""},
		// Keys: arrows, Home, Delete, F5, Shift+Tab, SS3 F1, bracketed
		// paste, Escape, Alt+x, Alt+], Alt+P, Ctrl-C.
		{[]string{"\x1b[A\x1b[1;5C\x1b[H\x1b[3~\x1b[15~\x1b[Z\x1bOP\x1b[200~p\x1b[201~\x1b"}, "\x1b[A\x1b[1;5C\x1b[H\x1b[3~\x1b[15~\x1b[Z\x1bOP\x1b[200~p\x1b[201~\x1b"},
		{[]string{"\x1bx", "\x1b]", "\x1bP", "\x03"}, "\x1bx\x1b]\x1bP\x03"},
		// Reports cut between reads, every way.
		{[]string{"x\x1b[?1;", "2cy"}, "xy"},
		{[]string{"x\x1b]11;rgb:00", "00/0000/0000\x1b\\y"}, "xy"},
		{[]string{"x\x1b]11;rgb:0000/0000/0000\x1b", "\\y"}, "xy"},
		{[]string{"x\x1bP1$r", "0m\x1b\\y"}, "xy"},
	} {
		var f reportFilter
		got := ""
		for _, r := range c.reads {
			got += string(f.strip([]byte(r), now))
		}
		if got != c.want {
			t.Errorf("reads %q: the prompt got %q, want %q", c.reads, got, c.want)
		}
	}
	// A report cut, and nothing more within reportGap: what comes later is
	// the learner's, read as keys; the cut report is dropped.
	var f reportFilter
	if got := string(f.strip([]byte("x\x1b]11;rgb:00"), now)); got != "x" {
		t.Fatalf("a cut report: %q", got)
	}
	if got := string(f.strip([]byte("ls\r"), now.Add(time.Second))); got != "ls\r" {
		t.Errorf("keys a second after a cut report: %q, want %q", got, "ls\r")
	}
}
