package repl

import (
	"os"
	"strconv"

	"stepbox/primitives"
	"stepbox/viz"
)

// outputWidth is the width stepbox lays its output out for: the
// terminal's own when it has one (term, read again before every prompt
// so a resized window is followed, or else standard output's, as in
// `stepbox run FILE` typed at a terminal), else $COLUMNS as shells set
// it, else 80. Narrower than viz.MinWidth, the terminal folds what
// stepbox writes.
func outputWidth(term *primitives.Terminal) int {
	w := term.Width()
	if w <= 0 && primitives.IsTerminal(os.Stdout) {
		w = (&primitives.Terminal{File: os.Stdout}).Width()
	}
	if w <= 0 {
		w, _ = strconv.Atoi(os.Getenv("COLUMNS"))
	}
	if w <= 0 {
		return viz.DefaultWidth
	}
	return max(w, viz.MinWidth)
}
