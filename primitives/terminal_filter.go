package primitives

import (
	"io"
	"sync"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/ansi/parser"

	"stepbox/primitives/step"
)

// TerminalFilter passes a box command's output on to the learner's
// terminal as text and drawing, never as commands to the terminal. A
// terminal answers a query (device attributes, a cursor position, a
// setting, its colours, the clipboard, the title) by typing the answer
// into its input, which is stepbox's prompt once the command is over: a
// box must not type there. Nor may it retitle the terminal, change its
// modes, character sets, keyboard or mouse reports, or leave it inside an
// unfinished sequence that swallows stepbox's next line.
//
// Nor may it draw over what is already on the screen: a cursor moved up
// (or restored, or a screen cleared) lets a box overwrite stepbox's
// prompt and earlier lines with text that reads as stepbox's own.
//
// So what passes is an allowlist: printable text (UTF-8; no C1 or
// bidirectional controls), newline, carriage return, tab and backspace,
// SGR colours (`ls --color`), and the moves and erasing that stay on the
// line the cursor is on (a progress bar's \r and ESC [ K); every other
// control, escape sequence or string (cursor moves up or down, saving
// and restoring the cursor, clearing the screen, inserting or deleting
// lines, CSI queries and modes, OSC, DCS, APC, PM, SOS, C1) is shown
// escaped, as every panel shows what a box named (step.Escape: ESC [ 6 n
// reads \x1b[6n). Sequences are found by the DEC
// parser (charmbracelet/x/ansi, vt100.net's state machine, as a terminal
// reads them), whose state is kept across writes: a sequence split
// between two writes is judged whole. An allowed sequence passes only in
// its plain form (ESC [, digits, ';' and ':', the final byte): one with a
// control inside, which a terminal would act on in the middle of it, is
// shown escaped.
type TerminalFilter struct {
	mu sync.Mutex
	w  io.Writer
	p  *ansi.Parser
	// unit holds the sequence (or UTF-8 character) being read since the
	// parser left the ground state; inUnit says one is open.
	unit   []byte
	inUnit bool
	// escaping: the open unit is shown escaped whatever follows (a
	// string, or longer than any allowed sequence), so it is written as
	// it comes instead of held.
	escaping bool
	// coloured: an SGR passed, which Close resets.
	coloured bool
	// last is the last byte the terminal got: Close ends the box's last
	// line if it did not.
	last byte
	// eol ends the box's last line when it did not: "\r\n" on a
	// terminal, whatever its ONLCR; "\n" in a transcript.
	eol string
	out []byte
}

// NewTerminalFilter filters what is written to w.
func NewTerminalFilter(w io.Writer) *TerminalFilter {
	p := ansi.NewParser()
	// The filter never reads a string's data: a small buffer bounds what
	// the parser keeps of an endless one.
	p.SetDataSize(64)
	return &TerminalFilter{w: w, p: p, last: '\n', eol: "\r\n"}
}

// NewTranscriptFilter filters what is written to w, a file or pipe that
// is not a terminal: a transcript (`stepbox run x.sb > log`), which a
// terminal shows later (cat, less, a CI log's viewer) and whose raw
// escapes would query or retitle that terminal then. It passes and
// escapes what NewTerminalFilter's does, and ends an unfinished last line
// with a newline alone, as stepbox's own lines end in a file.
func NewTranscriptFilter(w io.Writer) *TerminalFilter {
	f := NewTerminalFilter(w)
	f.eol = "\n"
	return f
}

const (
	// maxSequence bounds an allowed sequence (the longest SGR, with two
	// 24-bit colours, is under 50 bytes): a longer one is shown escaped.
	maxSequence = 128
	// escapedChunk is how much of an escaped unit is held before it is
	// written.
	escapedChunk = 4096
)

// Write filters p; it always reports all of p written.
func (f *TerminalFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.out[:0]
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !f.inUnit && f.p.State() == parser.GroundState && plainByte(c) {
			// A run of plain text: the parser would print or execute
			// each byte and stay on the ground, where the test below
			// passes it. Copied as a run, a large output passes at
			// about 400 MB/s instead of 30 through the parser.
			j := i + 1
			for j < len(p) && plainByte(p[j]) {
				j++
			}
			out = append(out, p[i:j]...)
			i = j - 1
			continue
		}
		before := f.p.State()
		action := f.p.Advance(c)
		after := f.p.State()
		if !f.inUnit && before == parser.GroundState && after == parser.GroundState {
			switch {
			case action == parser.PrintAction, action == parser.ExecuteAction && passedControl(c):
				out = append(out, c)
			default:
				out = append(out, step.Escape(string([]byte{c}))...)
			}
			continue
		}
		f.inUnit = true
		f.unit = append(f.unit, c)
		if after != parser.GroundState {
			if !f.escaping && (stringState(after) || len(f.unit) > maxSequence) {
				f.escaping = true
			}
			if f.escaping && len(f.unit) >= escapedChunk {
				out = f.flushEscaped(out, true)
			}
			continue
		}
		// The unit is over: the parser is back on the ground.
		if !f.escaping && f.passes(action) {
			out = append(out, f.unit...)
		} else {
			out = f.flushEscaped(out, false)
		}
		f.unit, f.inUnit, f.escaping = f.unit[:0], false, false
	}
	if f.escaping {
		out = f.flushEscaped(out, true)
	}
	f.out = out
	if len(out) > 0 {
		f.last = out[len(out)-1]
		if _, err := f.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Close writes what is left of a sequence the box never finished, shown
// escaped (the terminal never sees its start), resets the colours when
// the box set some, and ends the box's last line when it did not:
// stepbox's next line, its prompt among them, is in its own colours on a
// line of its own, where the box's text cannot pass for the learner's.
func (f *TerminalFilter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.out[:0]
	if f.inUnit {
		out = f.flushEscaped(out, false)
		f.unit, f.inUnit, f.escaping = f.unit[:0], false, false
		f.p.Reset()
	}
	if f.coloured {
		out = append(out, "\x1b[0m"...)
		f.coloured = false
	}
	last := f.last
	if len(out) > 0 {
		last = out[len(out)-1]
	}
	if last != '\n' {
		out = append(out, f.eol...)
	}
	f.out = out
	f.last = '\n'
	if len(out) == 0 {
		return nil
	}
	_, err := f.w.Write(out)
	return err
}

// flushEscaped appends the unit so far, escaped; more, when more of it
// is to come: a UTF-8 character cut at its end waits for the rest, so
// that the unit reads the same however the writes split it.
func (f *TerminalFilter) flushEscaped(out []byte, more bool) []byte {
	keep := 0
	if more {
		keep = step.IncompleteUTF8(f.unit)
	}
	out = append(out, step.Escape(string(f.unit[:len(f.unit)-keep]))...)
	f.unit = append(f.unit[:0], f.unit[len(f.unit)-keep:]...)
	return out
}

// passedControl: the C0 controls that passes, which move the cursor on
// the line or to the next (backspace, tab, newline, carriage return).
func passedControl(c byte) bool {
	return c == '\b' || c == '\t' || c == '\n' || c == '\r'
}

// plainByte: printable ASCII or a control that passes, which the
// parser on the ground prints or executes without leaving it.
func plainByte(c byte) bool {
	return c >= 0x20 && c < 0x7f || passedControl(c)
}

func stringState(s parser.State) bool {
	switch s {
	case parser.OscStringState, parser.DcsEntryState, parser.DcsParamState, parser.DcsIntermediateState,
		parser.DcsStringState, parser.SosStringState, parser.PmStringState, parser.ApcStringState:
		return true
	}
	return false
}

// passes reports whether the unit that just ended, by action, goes to
// the terminal as written: one printable character, or an allowed
// sequence in its plain form.
func (f *TerminalFilter) passes(action parser.Action) bool {
	u := f.unit
	switch action {
	case parser.PrintAction:
		r, n := utf8.DecodeRune(u)
		return n == len(u) && !step.UnsafeRune(r)
	case parser.DispatchAction:
	default:
		return false
	}
	if len(u) < 3 || u[0] != ansi.ESC || u[1] != '[' {
		// ESC 7, ESC 8, ESC D, ESC E, ESC M too: a restored cursor (DECRC) is
		// where stepbox or the box saved it, RI moves it up a line.
		return false
	}
	for _, c := range u[2 : len(u)-1] {
		if c < '0' || c > ';' { // digits, ':' and ';' only: no private marker, no intermediate
			return false
		}
	}
	switch final := u[len(u)-1]; final {
	case 'm': // SGR
		f.coloured = true
		return true
	case 'C', 'D', 'G', '`', 'a':
		// CUF CUB CHA HPA HPR: the cursor along its line, which it never
		// leaves (no reverse wrap: a mode the box cannot set here).
		return true
	case 'K', 'X', '@', 'P':
		// EL ECH ICH DCH: erase or insert on the cursor's line
		return true
	}
	// CUU CUD CNL CPL CUP HVP VPA VPR, IL DL, ED, and every other final:
	// they reach lines above the box's, stepbox's among them.
	return false
}
