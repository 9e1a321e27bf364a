package primitives

import (
	"bytes"
	"io"
	"sync"
)

// QueryFilter passes a box command's output on to the learner's
// terminal without the escape sequences that make a terminal answer: a
// terminal types its answer (a cursor position report, its device
// attributes, its colours) into its input, which is stepbox's prompt
// once the command is over; a box must not type there. Everything else,
// colours included, passes as written. A sequence split across writes
// is held until it is whole.
type QueryFilter struct {
	mu   sync.Mutex
	w    io.Writer
	held []byte
}

// NewQueryFilter filters what is written to w.
func NewQueryFilter(w io.Writer) *QueryFilter { return &QueryFilter{w: w} }

// maxHeld bounds a sequence held for its end: queries are short; a
// longer string (a window title, an image) is passed on as it is.
const maxHeld = 4096

const (
	esc = 0x1b
	enq = 0x05 // ENQ: the terminal answers its answerback message
)

// Write filters p; it always reports all of p written.
func (f *QueryFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := append(f.held, p...)
	f.held = nil
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		switch b[i] {
		case enq:
			i++
			continue
		case esc:
		default:
			j := i + 1
			for j < len(b) && b[j] != esc && b[j] != enq {
				j++
			}
			out = append(out, b[i:j]...)
			i = j
			continue
		}
		n, query := escapeSequence(b[i:])
		if n == 0 { // not whole yet
			if len(b)-i < maxHeld {
				f.held = append([]byte(nil), b[i:]...)
				break
			}
			n = len(b) - i
		}
		if !query {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	if _, err := f.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// escapeSequence measures the escape sequence at the start of b (which
// starts with ESC): its length, 0 when b ends before it does, and
// whether a terminal answers it (xterm's ctlseqs, console_codes(4)).
func escapeSequence(b []byte) (int, bool) {
	if len(b) < 2 {
		return 0, false
	}
	switch b[1] {
	case '[': // CSI: parameters 0x30-0x3f, intermediates 0x20-0x2f, a final 0x40-0x7e
		for j := 2; j < len(b); j++ {
			c := b[j]
			switch {
			case c >= 0x20 && c <= 0x3f:
				continue
			case c >= 0x40 && c <= 0x7e:
				return j + 1, csiQuery(b[2:j], c)
			default: // not a CSI sequence: pass the ESC on alone
				return 1, false
			}
		}
		return 0, false
	case ']', 'P': // OSC, DCS: a string ended by BEL (OSC) or ST (ESC \)
		for j := 2; j < len(b); j++ {
			if b[1] == ']' && b[j] == 0x07 {
				return j + 1, stringQuery(b[1], b[2:j])
			}
			if b[j] == esc {
				if j+1 == len(b) {
					return 0, false
				}
				if b[j+1] == '\\' {
					return j + 2, stringQuery(b[1], b[2:j])
				}
			}
		}
		return 0, false
	case 'Z': // DECID: answered as device attributes
		return 2, true
	}
	return 2, false
}

// csiQuery reports whether CSI params final is a request for a report:
// DSR and CPR (n), device attributes (c, > c, = c), DECRQM ($ p) and the
// window reports of XTWINOPS (t with 11, 13, 14, 18-21).
func csiQuery(params []byte, final byte) bool {
	switch final {
	case 'n', 'c':
		return true
	case 'p':
		return bytes.HasSuffix(params, []byte("$"))
	case 't':
		first, _, _ := bytes.Cut(params, []byte(";"))
		switch string(first) {
		case "11", "13", "14", "18", "19", "20", "21":
			return true
		}
	}
	return false
}

// stringQuery reports whether an OSC or DCS string asks: an OSC whose
// last parameter is "?" (colours, the clipboard), a DCS request for a
// setting (DECRQSS, $q) or a terminfo capability (XTGETTCAP, +q).
func stringQuery(kind byte, s []byte) bool {
	if kind == ']' {
		return bytes.HasSuffix(s, []byte("?"))
	}
	return bytes.HasPrefix(s, []byte("$q")) || bytes.HasPrefix(s, []byte("+q"))
}
