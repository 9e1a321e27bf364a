package step

import (
	"fmt"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// ShellQuote quotes s as one word for a POSIX shell (bash when s holds
// control bytes), leaving a word that needs no quotes as it is: the
// "with standard tools" lines must run as printed when pasted.
func ShellQuote(s string) string {
	if q, err := syntax.Quote(s, syntax.LangPOSIX); err == nil {
		return q
	}
	if q, err := syntax.Quote(s, syntax.LangBash); err == nil {
		return q
	}
	return Quote(s)
}

// ShellJoin is argv as a shell command line: each word quoted as needed.
func ShellJoin(argv []string) string { return join(argv, ShellQuote) }

// ShellQuotePOSIX quotes s as one word for every POSIX sh, dash (Debian's
// /bin/sh) too, for scripts stepbox writes: as ShellQuote when s is
// printable; otherwise in single quotes, where a quote is closed,
// escaped (\') and reopened, a newline or tab stays literal, and each
// other control byte is written by printf(1) in a command substitution
// ("$(printf '\033')" between the quoted parts), so the script holds no
// raw terminal control bytes and needs no bash $'…'. A NUL byte, which
// no argument or environment value can hold, is dropped.
func ShellQuotePOSIX(s string) string {
	if q, err := syntax.Quote(s, syntax.LangPOSIX); err == nil {
		return q
	}
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == 0:
		case c == '\'':
			b.WriteString(`'\''`)
		case c == '\n' || c == '\t':
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `'"$(printf '\%03o')"'`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// ShellJoinPOSIX is argv as a command line for every POSIX sh.
func ShellJoinPOSIX(argv []string) string { return join(argv, ShellQuotePOSIX) }

func join(argv []string, quote func(string) string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = quote(a)
	}
	return strings.Join(q, " ")
}
