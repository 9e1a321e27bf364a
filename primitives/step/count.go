package step

import (
	"strconv"
	"strings"
)

// Count says n nouns as English does: "1 layer", "2 layers", "1 box",
// "3 boxes", "0 processes", "2 copies". Every count stepbox prints goes
// through it, so none reads "1 layers" or "box(es)".
func Count(n int, noun string) string {
	return strconv.Itoa(n) + " " + Plural(n, noun)
}

// Plural is noun for a count of n: as it is for 1, plural otherwise.
func Plural(n int, noun string) string {
	if n == 1 || n == -1 {
		return noun
	}
	switch {
	case strings.HasSuffix(noun, "s"), strings.HasSuffix(noun, "x"),
		strings.HasSuffix(noun, "sh"), strings.HasSuffix(noun, "ch"):
		return noun + "es"
	case strings.HasSuffix(noun, "y") && len(noun) > 1 && !strings.ContainsRune("aeiou", rune(noun[len(noun)-2])):
		return noun[:len(noun)-1] + "ies"
	}
	return noun + "s"
}
