package step

import (
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
func ShellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}
