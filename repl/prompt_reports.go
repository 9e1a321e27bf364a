package repl

import (
	"bytes"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// reportFilter drops from what stepbox's prompt reads the reports a
// terminal types on its own: its answers to queries (device attributes,
// cursor position and status reports, DECRPM, DECRQSS, XTGETTCAP, window
// and colour reports, all the strings) and mouse reports. A box's output
// never asks for one (primitives.TerminalFilter); this is the line behind
// it, for an answer to anything else that asked (a host command the
// learner ran, `!printf '\e[c'`, a terminal that answers more than it is
// known to): it is no key the learner typed, and it is never run as a
// command. Keys the learner types ahead are kept, which flushing the
// terminal's input (tcflush) would throw away. No key takes these forms:
// none is a string (OSC, DCS, APC, PM, SOS), none has a private marker
// (< = > ?), none ends in c, n, R, t or y (go-prompt's only key of that
// form, CSI 1;2R for F16, is a cursor position report too).
type reportFilter struct {
	partial []byte    // a report the last read ended inside
	at      time.Time // when that read was
}

// reportGap is how long a report cut between two reads waits for its
// end: a terminal writes a report at once, so its pieces come together.
// What comes later is the learner's: the cut report is dropped.
const reportGap = 100 * time.Millisecond

// strip returns b, one read of the terminal at now, without the reports
// in it. A report the read ends inside is held for the next read.
func (f *reportFilter) strip(b []byte, now time.Time) []byte {
	if len(f.partial) > 0 {
		if now.Sub(f.at) <= reportGap {
			b = append(f.partial, b...)
		}
		f.partial = nil
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		if b[i] != ansi.ESC {
			j := bytes.IndexByte(b[i:], ansi.ESC)
			if j < 0 {
				j = len(b) - i
			}
			out = append(out, b[i:i+j]...)
			i += j
			continue
		}
		seq, _, n, state := ansi.DecodeSequence(b[i:], ansi.NormalState, nil)
		cut := state != ansi.NormalState
		// A string cut just before its ST's backslash ends on its ESC.
		if !cut && isTermString(seq) && i+n == len(b)-1 && b[len(b)-1] == ansi.ESC {
			cut = true
		}
		switch {
		case cut && n <= 2:
			// The Escape key, or Alt with a key (ESC ], ESC P): keys,
			// which a report is never cut so soon after its start.
			out = append(out, seq...)
		case cut:
			f.partial, f.at = append([]byte(nil), b[i:]...), now
			return out
		case !isReport(seq):
			out = append(out, seq...)
		}
		i += n
	}
	return out
}

// isTermString reports whether seq is a string a terminal sends only as
// a report: OSC, DCS, APC, PM, SOS.
func isTermString(seq []byte) bool {
	return len(seq) >= 2 && bytes.IndexByte([]byte("]P_^X"), seq[1]) >= 0
}

// isReport reports whether seq, a whole escape sequence, is a terminal's
// report rather than a key.
func isReport(seq []byte) bool {
	if isTermString(seq) {
		return true
	}
	if len(seq) < 3 || seq[1] != '[' {
		return false
	}
	if seq[2] >= '<' && seq[2] <= '?' {
		return true
	}
	switch seq[len(seq)-1] {
	case 'c', 'n', 'R', 't', 'y':
		return true
	}
	return false
}
