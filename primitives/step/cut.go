package step

import (
	"fmt"
	"unicode/utf8"
)

// CutLen is how much of a value an error message repeats.
const CutLen = 64

// Cut shortens a value the learner typed for an error message that
// repeats it: a 5,000-character argument is named by its start and its
// length, not echoed whole. It never splits a UTF-8 sequence.
func Cut(s string) string {
	if len(s) <= CutLen {
		return s
	}
	n := CutLen
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s… (%d bytes)", s[:n], len(s))
}
