package repl

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"stepbox/primitives/step"
	"stepbox/viz"
)

// messageLineMax bounds one line of an error message: a message that
// repeats what it was given (a 5,000-character name, a box's file name)
// keeps its start and end and says how much was cut.
const messageLineMax = 1000

// printable makes an error message safe and short enough to print: each
// line cut to messageLineMax, and every control character in it (which
// may have come from a box) escaped.
func printable(msg string) string {
	ls := strings.Split(msg, "\n")
	for i, l := range ls {
		if len(l) > messageLineMax {
			head, tail := runeStart(l, 640), runeStart(l, len(l)-200)
			l = fmt.Sprintf("%s … (%d bytes cut) … %s", l[:head], tail-head, l[tail:])
		}
		ls[i] = viz.Escape(l)
	}
	return strings.Join(ls, "\n")
}

// runeStart moves i back to the start of the UTF-8 sequence it falls in.
func runeStart(s string, i int) int {
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}

// refuseNUL refuses a line that holds a NUL byte, raw or written as an
// escape in $'…' (\0, \x00, \u0000): the splitter, as bash does, drops
// the one and cuts the word short at the other, so the command would run
// with an argument other than the one typed. No kernel name (a file, a
// hostname, a box's) can hold a NUL anyway.
func refuseNUL(line string) error {
	if i := strings.IndexByte(line, 0); i >= 0 {
		return fmt.Errorf("a NUL byte at column %d: no name or argument can hold one", i+1)
	}
	f, err := syntax.NewParser().Parse(strings.NewReader(line), "")
	if err != nil {
		return nil // the splitter reports it
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		if q, ok := n.(*syntax.SglQuoted); ok && q.Dollar && err == nil {
			if v, _, ferr := expand.Format(nil, q.Value, nil); ferr == nil && strings.Contains(v, "\x00") {
				err = fmt.Errorf("$'%s' holds a NUL byte: no name or argument can hold one", step.Cut(q.Value))
			}
		}
		return err == nil
	})
	return err
}
