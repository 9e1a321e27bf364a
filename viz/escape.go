package viz

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape makes a string that came from a box (a file name, a hostname, a
// process name, a mount path, a layer's contents) safe to print: every
// control character (C0, DEL, C1), every Unicode bidirectional control
// and every byte that is not UTF-8 is shown as an escape (\n, \x1b,
// \u202e) instead of reaching the terminal, where ESC ] 0 ; retitles it
// and ESC [ 2 J clears it. Printable text, ASCII or not, is left as it is.
func Escape(s string) string {
	if safe(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// safe reports whether s needs no escaping (the common case, no allocation).
func safe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			return !strings.ContainsFunc(s, unsafeRune) && utf8.ValidString(s)
		}
	}
	return true
}

// unsafeRune reports whether r changes what the terminal does or how it
// orders the text around it ("Trojan Source", CVE-2021-42574).
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError
}

// escapeCells escapes every cell of a row, each line of a cell apart (a
// table draws a cell's lines one under the other); escapeRows, of a table.
func escapeCells(cells []string) []string {
	out := make([]string, len(cells))
	for i, c := range cells {
		out[i] = EscapeLines(c)
	}
	return out
}

// EscapeLines is Escape for text of several lines: the newlines between
// them stay, everything else is escaped.
func EscapeLines(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && unsafeRune(r) }) {
		return s // the common case: no allocation
	}
	ls := strings.Split(s, "\n")
	for i, l := range ls {
		ls[i] = Escape(l)
	}
	return strings.Join(ls, "\n")
}

func escapeRows(rows [][]string) [][]string {
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = escapeCells(r)
	}
	return out
}
