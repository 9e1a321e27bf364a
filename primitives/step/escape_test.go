package step

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// unescape reads Escape's text back: \\, \n, \r, \t, \xHH (a byte), \uHHHH
// (a rune); every other character stands for itself.
func unescape(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			t.Fatalf("%q ends in a lone backslash", s)
		}
		switch s[i+1] {
		case '\\':
			b.WriteByte('\\')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'x':
			n, err := strconv.ParseUint(s[i+2:min(i+4, len(s))], 16, 8)
			if err != nil {
				t.Fatalf("%q: a bad \\x at %d", s, i)
			}
			b.WriteByte(byte(n))
			i += 2
		case 'u':
			n, err := strconv.ParseUint(s[i+2:min(i+6, len(s))], 16, 32)
			if err != nil {
				t.Fatalf("%q: a bad \\u at %d", s, i)
			}
			b.WriteRune(rune(n))
			i += 4
		default:
			t.Fatalf("%q: \\%c is no escape Escape writes", s, s[i+1])
		}
		i++
	}
	return b.String()
}

// escapeCases are names a box may choose: two that read alike unless a
// backslash is escaped too (the text \x1b, an ESC) among them.
var escapeCases = []string{
	"plain", "", `\x1b[2J`, "\x1b[2J", `a\nb`, "a\nb", `\\`, `\`, `C:\dir\`, `\u202e`, "\u202e",
	"bad\xff", `bad\xff`, "tab\there", `\t`, "日本\\語", "c1\u009b", `c1\u009b`,
}

// Escape's text reads back to the one string it was made of: a name that
// holds the text \x1b is shown otherwise than one that holds an ESC.
func TestEscapeReadsBackToOneString(t *testing.T) {
	shown := map[string]string{}
	for _, s := range escapeCases {
		e := Escape(s)
		if got := unescape(t, e); got != s {
			t.Errorf("Escape(%q) = %q, which reads back as %q", s, e, got)
		}
		if other, ok := shown[e]; ok {
			t.Errorf("Escape shows %q and %q alike: %q", s, other, e)
		}
		shown[e] = s
	}
}

// FuzzEscape: whatever a box names, Escape shows it as printable UTF-8
// that reads back to that name, and only to it.
func FuzzEscape(f *testing.F) {
	for _, s := range escapeCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		if !utf8.ValidString(e) || strings.ContainsFunc(e, UnsafeRune) {
			t.Fatalf("Escape(%q) = %q: not printable", s, e)
		}
		if got := unescape(t, e); got != s {
			t.Fatalf("Escape(%q) = %q, which reads back as %q", s, e, got)
		}
	})
}
