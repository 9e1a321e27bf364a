package repl

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"stepbox/primitives/infile"
	"stepbox/primitives/step"
)

// scriptAllowed says what `source` and `stepbox run` read.
const scriptAllowed = "give a script, a regular file of commands one a line (`stepbox run -` reads one from stdin)"

// openScript opens the script at name: a regular file only (a FIFO or
// /dev/zero would hang the session: infile).
func openScript(name string) (*os.File, error) {
	f, err := infile.Open(name)
	var nr *infile.NotRegularError
	if errors.As(err, &nr) {
		return nil, fmt.Errorf("%w: %s", nr, scriptAllowed)
	}
	return f, err
}

// RunScript runs commands from r, echoing each before its output. It stops
// at the first failure, unless the line starts with '-' (as in make), and
// when ctx is cancelled (Ctrl-C), also while it waits for a line.
func (sh *Shell) RunScript(ctx context.Context, r *os.File, name string) error {
	lines := &scriptLines{br: bufio.NewReaderSize(r, 64*1024), got: make(chan lineRead, 1)}
	n := 0
	for {
		raw, size, rerr := lines.next(ctx)
		if rerr != nil && (rerr != io.EOF || size == 0) {
			if rerr == io.EOF {
				return nil
			}
			return &ScriptError{File: name, Line: n + 1, Err: rerr}
		}
		n++
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tolerate := false
		if rest, ok := strings.CutPrefix(line, "-"); ok {
			tolerate, line = true, strings.TrimSpace(rest)
		}
		var err error
		if size > scriptLineMax {
			// Not run: only its start was kept, and a cut command is another command.
			err = fmt.Errorf("line %d is %d bytes long; a command line is at most %d bytes", n, size, scriptLineMax)
			fmt.Fprintln(sh.Out, sh.echoLine(step.Cut(line)))
		} else {
			fmt.Fprintln(sh.Out, sh.echoLine(line))
			err = sh.Execute(ctx, line)
		}
		if err != nil {
			sh.reportError(err)
			if !tolerate {
				return &ScriptError{File: name, Line: n, Err: err}
			}
		}
		if sh.exit {
			return nil
		}
		if ctx.Err() != nil {
			return &ScriptError{File: name, Line: n, Err: ctx.Err()}
		}
	}
}

// scriptLineMax bounds one line of a script (a command and its arguments).
const scriptLineMax = 1 << 20

// scriptLineEnd bounds how far a line too long to run is read on for its
// end, so that the next line can run after a '-': a file with no newline
// in its first 64 MiB is not a script.
const scriptLineEnd = 64 << 20

// errNoLineEnd is a line with no end within scriptLineEnd bytes.
var errNoLineEnd = fmt.Errorf("no end of line in %d MiB: this is not a script of commands one a line; %s", scriptLineEnd>>20, scriptAllowed)

// scriptLines hands RunScript a script's lines. A read from a pipe or a
// terminal (`stepbox run -`) blocks until a writer writes: it runs in a
// goroutine of its own, so that Ctrl-C stops the script meanwhile; it
// reads only when asked, never ahead of the command that runs.
type scriptLines struct {
	br  *bufio.Reader
	got chan lineRead
}

type lineRead struct {
	line string
	size int
	err  error
}

// next is the next line, as readLine gives it, or ctx's error.
func (s *scriptLines) next(ctx context.Context) (string, int, error) {
	if err := ctx.Err(); err != nil {
		return "", 0, err
	}
	go func() {
		l, n, err := readLine(ctx, s.br, scriptLineMax)
		s.got <- lineRead{l, n, err}
	}()
	select {
	case r := <-s.got:
		return r.line, r.size, r.err
	case <-ctx.Done():
		// The read goes on until the writer writes or closes, then ends.
		return "", 0, ctx.Err()
	}
}

// readLine reads one line from r, without its newline, keeping at most
// max+1 bytes of it; size is the whole line's length. It reads on for
// the end of a longer line up to scriptLineEnd bytes, and stops when ctx
// is cancelled.
func readLine(ctx context.Context, r *bufio.Reader, max int) (line string, size int, err error) {
	var b []byte
	for {
		chunk, err := r.ReadSlice('\n')
		size += len(chunk)
		if room := max + 1 - len(b); room > 0 {
			b = append(b, chunk[:min(len(chunk), room)]...)
		}
		if err == bufio.ErrBufferFull {
			if cerr := ctx.Err(); cerr != nil {
				return "", size, cerr
			}
			if size > scriptLineEnd {
				return "", size, errNoLineEnd
			}
			continue
		}
		if err == nil {
			size--
			b = bytes.TrimSuffix(b, []byte("\n"))
		}
		return string(b), size, err
	}
}

// ScriptError is the failure that stopped a script.
type ScriptError struct {
	File string
	Line int
	Err  error
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("%s:%d: stopped: %v", e.File, e.Line, e.Err)
}

func (e *ScriptError) Unwrap() error { return e.Err }
