package repl

import (
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"stepbox/primitives/step"
)

// messageLineMax bounds one line of an error message: a message that
// repeats what it was given (a 5,000-character name, a box's file name)
// keeps its start and end and says how much was cut.
const messageLineMax = 1000

// printable makes an error message safe and short enough to print: each
// line cut to messageLineMax, and every control character in it (which
// may have come from a box) escaped. Its newlines are stepbox's layout;
// a value the box named is escaped where it enters the message
// (viz.Escape: a newline as \n, a backslash as \\), and its escapes are
// left as they are here (step.EscapeControls).
func printable(msg string) string {
	ls := strings.Split(msg, "\n")
	for i, l := range ls {
		if len(l) > messageLineMax {
			head, tail := runeStart(l, 640), runeStart(l, len(l)-200)
			l = fmt.Sprintf("%s … (%d bytes cut) … %s", l[:head], tail-head, l[tail:])
		}
		ls[i] = step.EscapeControls(l)
	}
	return strings.Join(ls, "\n")
}

// errorText is err's message with the paths it wraps escaped (Escape: a
// newline as \n, a backslash as \\): the path of an fs.PathError or an
// os.LinkError (open, stat, rename, link of a file) is often one the box
// named, and os writes it into the message as it is, where a newline in
// it would start a line that reads as stepbox's own. The rest of the
// message is stepbox's, its newlines its layout (printable).
func errorText(err error) string {
	msg := err.Error()
	var paths [][2]string // raw, escaped
	add := func(p string) {
		if q := step.Escape(p); q != p && strings.Contains(msg, p) {
			paths = append(paths, [2]string{p, q})
		}
	}
	var walk func(error)
	walk = func(e error) {
		switch x := e.(type) {
		case *fs.PathError:
			add(x.Path)
		case *os.LinkError:
			add(x.Old)
			add(x.New)
		}
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if w := u.Unwrap(); w != nil {
				walk(w)
			}
		case interface{ Unwrap() []error }:
			for _, w := range u.Unwrap() {
				walk(w)
			}
		}
	}
	walk(err)
	if len(paths) == 0 {
		return msg
	}
	// One pass, the longest path first where two start at one place: an
	// escaped path is not read again (a path holding the two characters
	// \n beside one holding a newline).
	sort.SliceStable(paths, func(i, j int) bool { return len(paths[i][0]) > len(paths[j][0]) })
	var args []string
	for _, p := range paths {
		args = append(args, p[0], p[1])
	}
	return strings.NewReplacer(args...).Replace(msg)
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
