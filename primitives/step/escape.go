package step

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape makes a string that came from a box (a file name, a hostname, a
// process name, a mount path, a layer's contents, what a box command
// wrote) safe to print: every control character (C0, DEL, C1), every
// Unicode bidirectional control and every byte that is not UTF-8 is shown
// as an escape (\n, \x1b, \u202e) instead of reaching the terminal, where
// ESC ] 0 ; retitles it and ESC [ 2 J clears it; and a backslash as \\,
// so that the escape reads back to one string only: a name holding the
// four characters \x1b is shown \\x1b, not as an ESC would be. Printable
// text, ASCII or not, is left as it is.
//
// A value is escaped once, where it enters stepbox's text: Escape of
// escaped text doubles its backslashes again. What prints text made of
// stepbox's words and escaped values (a panel's table, a cut cell, an
// error line, the live page) uses EscapeControls.
func Escape(s string) string { return escape(s, true) }

// EscapeControls is Escape without the backslash: for text that holds
// values escaped already (Escape) besides stepbox's own words, which it
// leaves as they are, while a control character that reached it some
// other way is still shown escaped, never sent to the terminal.
func EscapeControls(s string) string { return escape(s, false) }

func escape(s string, backslash bool) string {
	if safe(s, backslash) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\\' && backslash:
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && UnsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case UnsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// safe reports whether s needs no escaping (the common case, no allocation).
func safe(s string, backslash bool) bool {
	if backslash && strings.IndexByte(s, '\\') >= 0 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f || c >= 0x80 {
			return !strings.ContainsFunc(s, UnsafeRune) && utf8.ValidString(s)
		}
	}
	return true
}

// UnsafeRune reports whether r changes what the terminal does or how it
// orders the text around it ("Trojan Source", CVE-2021-42574).
func UnsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == utf8.RuneError
}

// IncompleteUTF8 returns how many bytes at the end of p start a UTF-8
// sequence that is not complete yet: a writer that escapes or encodes
// text holds them for the next write, which may complete them.
func IncompleteUTF8(p []byte) int {
	for n := 1; n <= 3 && n <= len(p); n++ {
		c := p[len(p)-n]
		if c < 0x80 {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(p[len(p)-n:]) {
				return n
			}
			return 0
		}
	}
	return 0
}
