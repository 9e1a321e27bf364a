package primitives

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"stepbox/primitives/step"
)

// filterCases are what a box writes and what the learner's terminal gets
// of it (TerminalFilter).
var filterCases = []struct{ in, want string }{
	// ls --color, a 24-bit colour with sub-parameters, a progress bar.
	{"\x1b[0m\x1b[01;34mdir\x1b[0m  \x1b[38:2::255:0:0mred\x1b[m\n", "\x1b[0m\x1b[01;34mdir\x1b[0m  \x1b[38:2::255:0:0mred\x1b[m\n"},
	{" 10%\r\x1b[2K 50%\b\t\x1b[5G\x1b[K\x1b[3C\x1b[2D\x1b[4X\x1b[@\x1b[P\x1b[9`\x1b[a\n", " 10%\r\x1b[2K 50%\b\t\x1b[5G\x1b[K\x1b[3C\x1b[2D\x1b[4X\x1b[@\x1b[P\x1b[9`\x1b[a\n"},
	// What leaves the cursor's line, up to stepbox's prompt and earlier
	// lines (or down, and back with a restore), to draw over them: cursor
	// moves up or down, to a row, saved and restored; a cleared screen;
	// lines inserted and deleted; RI, IND, NEL.
	{"\x1b[1A\x1b[2F\x1b[B\x1b[E\x1b[3;1H\x1b[1;1f\x1b[d\x1b[e\x1b7\x1b8\x1bM\x1bD\x1bE\x1b[J\x1b[1J\x1b[2J\x1b[L\x1b[M✓ done\n",
		`\x1b[1A\x1b[2F\x1b[B\x1b[E\x1b[3;1H\x1b[1;1f\x1b[d\x1b[e\x1b7\x1b8\x1bM\x1bD\x1bE\x1b[J\x1b[1J\x1b[2J\x1b[L\x1b[M✓ done` + "\n"},
	{"日本 café\n", "日本 café\n"},
	// What makes the terminal answer: DA, DA2, DA3, DSR, CPR, DECRQM,
	// XTWINOPS reports, DECID, ENQ, DECRQSS, XTGETTCAP, OSC colour and
	// clipboard queries.
	{"Q\x1b[c\x1b[0c\x1b[>c\x1b[=c\x1b[5n\x1b[6n\x1b[?6n-", `Q\x1b[c\x1b[0c\x1b[>c\x1b[=c\x1b[5n\x1b[6n\x1b[?6n-`},
	{"\x1b[?2004$p\x1b[14t\x1b[18t\x1b[21t\x1bZ\x05", `\x1b[?2004$p\x1b[14t\x1b[18t\x1b[21t\x1bZ\x05`},
	{"\x1bP$qm\x1b\\\x1bP+q544e\x1b\\\x1b]11;?\x07\x1b]4;1;?\x1b\\\x1b]52;c;?\x07", `\x1bP$qm\x1b\\\x1bP+q544e\x1b\\\x1b]11;?\x07\x1b]4;1;?\x1b\\\x1b]52;c;?\x07`},
	// Titles, the clipboard, strings, window and mode changes,
	// character sets, 8-bit controls, a reset, erasing the scrollback.
	{"\x1b]0;T1\x07\x1b]2;T2\x1b\\\x1b]52;c;cm0gLXJm\x07\x1b_G;x\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\", `\x1b]0;T1\x07\x1b]2;T2\x1b\\\x1b]52;c;cm0gLXJm\x07\x1b_G;x\x1b\\\x1b^pm\x1b\\\x1bXsos\x1b\\`},
	{"\x1b[8;24;80t\x1b[?1049h\x1b[?1000h\x1b[4h\x1b[>4;2m\x1b[1;10r\x1b G\x1b(0\x0e\x1bc\x1b[3J", `\x1b[8;24;80t\x1b[?1049h\x1b[?1000h\x1b[4h\x1b[>4;2m\x1b[1;10r\x1b G\x1b(0\x0e\x1bc\x1b[3J`},
	{"c1\u009b6n raw\x9b6n\x9d0;t\x07 bidi\u202e nul\x00 bad\xff bel\a del\x7f", `c1\u009b6n raw\x9b6n\x9d0;t\x07 bidi\u202e nul\x00 bad\xff bel\x07 del\x7f`},
	// A control inside a sequence is acted on by the terminal mid-way:
	// the sequence is not passed in a form the filter did not check.
	{"\x1b[\x056n\x1b[3\x18m\x1b[31\x01m\x1b\x1b[31m", `\x1b[\x056n\x1b[3\x18m\x1b[31\x01m\x1b\x1b[31m`},
	// A UTF-8 character cut by an escape: nothing of the escape passes.
	{"\xc3\x1b[6n", `\xc3\x1b[6n`},
	// A string ended by ESC and another sequence: a terminal runs the
	// second; the filter shows both.
	{"\x1b]0;t\x1b[6n.", `\x1b]0;t\x1b[6n.`},
}

// What a box writes reaches the learner's terminal as text, colours and
// drawing, every other sequence shown escaped, however the writes split
// it (the parser's state is kept from one write to the next).
func TestTerminalFilterPassesTextAndColoursAndEscapesTheRest(t *testing.T) {
	for _, c := range filterCases {
		for size := 1; size <= len(c.in); size++ {
			var out bytes.Buffer
			f := NewTerminalFilter(&out)
			for i := 0; i < len(c.in); i += size {
				n, err := f.Write([]byte(c.in[i:min(i+size, len(c.in))]))
				if err != nil || n != min(size, len(c.in)-i) {
					t.Fatalf("%q: write of %d bytes: %d, %v", c.in, size, n, err)
				}
			}
			if got := out.String(); got != c.want {
				t.Fatalf("%q written %d bytes at a time: got %q, want %q", c.in, size, out.String(), c.want)
			}
		}
	}
}

// A sequence the box left unfinished is shown escaped when its output
// ends (the terminal, never given its start, is not left inside it,
// swallowing stepbox's next line), colours the box left on are reset,
// and its last line is ended: the prompt starts on a line of its own.
func TestTerminalFilterCloseShowsWhatWasLeftAndResetsColours(t *testing.T) {
	for in, want := range map[string]string{
		"\x1b[31mred":         "\x1b[31mred\x1b[0m\r\n",
		"text\x1b]0;endless":  `text\x1b]0;endless` + "\r\n",
		"text\x1b[6":          `text\x1b[6` + "\r\n",
		"\x1b[1mbold\x1b[38;": "\x1b[1mbold" + `\x1b[38;` + "\x1b[0m\r\n",
		"plain\n":             "plain\n",
		"progress\r":          "progress\r\r\n",
		"":                    "",
	} {
		var out bytes.Buffer
		f := NewTerminalFilter(&out)
		f.Write([]byte(in))
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("%q, then Close: got %q, want %q", in, out.String(), want)
		}
		// The filter is ready for more, in the ground state.
		out.Reset()
		f.Write([]byte("\x1b[6nx"))
		if out.String() != `\x1b[6nx` {
			t.Errorf("%q, Close, then a query: got %q", in, out.String())
		}
	}
}

// FuzzTerminalFilter: whatever a box writes, however the writes split
// it, the terminal gets no control but backspace, tab, newline and
// carriage return, no C1 or bidirectional control, valid UTF-8, and no
// escape sequence but the allowed ones in their plain form; and the same
// bytes whatever the split.
func FuzzTerminalFilter(f *testing.F) {
	for _, c := range filterCases {
		f.Add(c.in, uint8(3))
	}
	f.Add("\x1b[;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;;1m", uint8(1))
	f.Add("\x1b]"+strings.Repeat("x", 10000)+"\x07", uint8(200))
	f.Fuzz(func(t *testing.T, in string, size uint8) {
		whole := filtered(in, len(in)+1)
		if got := filtered(in, int(size)+1); got != whole {
			t.Fatalf("%q: split every %d bytes: %q; whole: %q", in, int(size)+1, got, whole)
		}
		if bad := unsafeForTerminal(whole); bad != "" {
			t.Fatalf("%q: the terminal gets %s: %q", in, bad, whole)
		}
	})
}

func filtered(in string, size int) string {
	var out bytes.Buffer
	f := NewTerminalFilter(&out)
	for i := 0; i < len(in); i += size {
		f.Write([]byte(in[i:min(i+size, len(in))]))
	}
	f.Close()
	return out.String()
}

// allowedSequence is the plain form of every sequence the filter lets
// through, checked apart from its parser.
var allowedSequence = regexp.MustCompile("^\x1b\\[[0-9;:]*[mCDG`aKX@P]")

// unsafeForTerminal says what of out a terminal would act on beyond
// drawing text: "" when nothing.
func unsafeForTerminal(out string) string {
	if !utf8.ValidString(out) {
		return "invalid UTF-8"
	}
	for i := 0; i < len(out); {
		r, n := utf8.DecodeRuneInString(out[i:])
		switch {
		case r == 0x1b:
			m := allowedSequence.FindString(out[i:])
			if m == "" {
				return fmt.Sprintf("a sequence not allowed at %d", i)
			}
			n = len(m)
		case r == '\b' || r == '\t' || r == '\n' || r == '\r':
		case step.UnsafeRune(r):
			return fmt.Sprintf("%U at %d", r, i)
		}
		i += n
	}
	return ""
}

// A Ctrl-P goes to the box unless Ctrl-Q follows it, however the keys
// arrive; Ctrl-P Ctrl-Q is the session's and ends the relay.
func TestDetachKeysAreCtrlPCtrlQ(t *testing.T) {
	var d detachKeys
	if out, det := d.feed([]byte("ls\x10")); string(out) != "ls" || det {
		t.Fatalf("a trailing Ctrl-P is held for its next key: %q %v", out, det)
	}
	if out := d.expire(); string(out) != "\x10" {
		t.Fatalf("a Ctrl-P whose Ctrl-Q never came goes to the box: %q", out)
	}
	if out, det := d.feed([]byte("\x10a\x10\x10")); string(out) != "\x10a\x10" || det {
		t.Fatalf("Ctrl-P then another key: both go to the box: %q %v", out, det)
	}
	if out, det := d.feed([]byte("\x11rest")); string(out) != "" || !det {
		t.Fatalf("Ctrl-P, then Ctrl-Q in the next read: detach: %q %v", out, det)
	}
	d = detachKeys{}
	if out, det := d.feed([]byte("x\x10\x11")); string(out) != "x" || !det {
		t.Fatalf("Ctrl-P Ctrl-Q in one read: detach: %q %v", out, det)
	}
	if out, det := d.feed([]byte("\x11")); string(out) != "\x11" || det {
		t.Fatalf("Ctrl-Q alone is the box's: %q %v", out, det)
	}
}
