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
	"syscall"

	"stepbox/primitives/infile"
	"stepbox/primitives/step"
	"stepbox/viz"
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
//
// A script that sources another, or sources itself, nests: each level
// holds its file open, so a file that sources itself went on until the
// session ran out of descriptors (EMFILE at ~19,000 levels), its memory
// growing past a GB. A file already being read (itself, or one that
// sourced it: the same device and inode, under any name) is refused at
// once, and so is a script nested deeper than scriptDepthMax.
func (sh *Shell) RunScript(ctx context.Context, r *os.File, name string) error {
	leave, err := sh.enterScript(r, name)
	if err != nil {
		return err
	}
	defer leave()
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
			// A script this line sourced has reported its failing line
			// already: each level reporting it again, its location one
			// longer, printed the error once per level.
			if sourcedFailure(err) == nil {
				sh.reportError(err)
			}
			if stopsScript(err, tolerate) {
				return &ScriptError{File: name, Line: n, Err: err, shown: true}
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

// stopsScript says whether a line's failure stops the script (source,
// `stepbox run`, a lesson's solution): every failure of a line without a
// leading '-', and the learner's Ctrl-C whatever the line, also one passed
// on to a command that reads the terminal (enter) rather than cancelling
// the script's context: it is not the failure '-' lets by.
func stopsScript(err error, tolerate bool) bool {
	return !tolerate || interruptedBy(err)
}

// ScriptError is the failure that stopped a script.
type ScriptError struct {
	File string
	Line int
	Err  error
	// shown: the failing line's error was printed where it failed.
	shown bool
}

// Error names where the script stopped, through the scripts it sourced
// ("a.sb:1 → b.sb:4: stopped: …"), and the innermost line's error once.
func (e *ScriptError) Error() string {
	chain, err := e.chain()
	where := make([]string, len(chain))
	for i, se := range chain {
		where[i] = fmt.Sprintf("%s:%d", scriptName(se.File), se.Line)
	}
	return fmt.Sprintf("%s: stopped: %v", strings.Join(where, " → "), err)
}

// Where names where the script stopped as `stepbox run` says it: "a.sb
// line 1 → b.sb line 4".
func (e *ScriptError) Where() string {
	chain, _ := e.chain()
	where := make([]string, len(chain))
	for i, se := range chain {
		where[i] = fmt.Sprintf("%s line %d", scriptName(se.File), se.Line)
	}
	return strings.Join(where, " → ")
}

// chain is e and the failures of the scripts it sourced, outermost
// first, and the error of the line that stopped the innermost.
func (e *ScriptError) chain() ([]*ScriptError, error) {
	chain := []*ScriptError{e}
	err := e.Err
	for se := sourcedFailure(err); se != nil; se = sourcedFailure(err) {
		chain = append(chain, se)
		err = se.Err
	}
	return chain, err
}

// sourcedFailure is the failure of the script a `source` line ran, as
// Execute returns it (the ScriptError, or the CommandError of source
// around it), or nil for any other error.
func sourcedFailure(err error) *ScriptError {
	if ce, ok := err.(*CommandError); ok && ce.Cmd == "source" {
		err = ce.Err
	}
	se, _ := err.(*ScriptError)
	return se
}

// shownAtLine says that the error of the line that stopped the innermost
// script was printed at that line (not a read of the file that failed).
func (e *ScriptError) shownAtLine() bool {
	chain, _ := e.chain()
	return chain[len(chain)-1].shown
}

// interrupted says that the learner's Ctrl-C stopped the script: it
// ended the line's command, or came between lines.
func (e *ScriptError) interrupted() bool {
	_, err := e.chain()
	return interruptedBy(err) || errors.Is(err, context.Canceled)
}

// interruptedBy says that err is a command the learner's Ctrl-C ended.
func interruptedBy(err error) bool {
	var ee *ExitError
	return errors.As(err, &ee) && ee.Interrupted != ""
}

func (e *ScriptError) Unwrap() error { return e.Err }

// scriptDepthMax bounds how deep scripts nest: the script `source` or
// `stepbox run` reads is the first, a script it sources the second. Each
// level holds its file open; a learner's scripts nest two or three deep.
const scriptDepthMax = 8

// scriptFrame is a script being read, for enterScript's checks.
type scriptFrame struct {
	name     string
	dev, ino uint64
}

// enterScript records that the script in f, opened at name, is being
// read, until leave: it refuses a file already being read (by device and
// inode, whatever its name: ./a.sb and a.sb are one file), naming the
// loop, and a script nested deeper than scriptDepthMax.
func (sh *Shell) enterScript(f *os.File, name string) (leave func(), err error) {
	fr := scriptFrame{name: name}
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			fr.dev, fr.ino = uint64(st.Dev), st.Ino
		}
	}
	for i, open := range sh.scripts {
		if fr.ino != 0 && open.dev == fr.dev && open.ino == fr.ino {
			return nil, fmt.Errorf("%s is already being run: %s; a script cannot source itself or a script that sourced it", scriptName(name), scriptChain(append(sh.scripts[i:len(sh.scripts):len(sh.scripts)], fr)))
		}
	}
	if len(sh.scripts) >= scriptDepthMax {
		return nil, fmt.Errorf("%s would be script %d deep: %s; scripts nest at most %d deep (the script typed or run is the first)", scriptName(name), len(sh.scripts)+1, scriptChain(append(sh.scripts[:len(sh.scripts):len(sh.scripts)], fr)), scriptDepthMax)
	}
	sh.scripts = append(sh.scripts, fr)
	return func() { sh.scripts = sh.scripts[:len(sh.scripts)-1] }, nil
}

// scriptNameMax bounds a script's name in a message: a chain of names
// stays readable, and keeps each name's end, its most telling part.
const scriptNameMax = 160

// scriptName is a script's name for a message: cut in its middle if
// long (as printable cuts a line), and escaped.
func scriptName(name string) string {
	if len(name) > scriptNameMax {
		head, tail := runeStart(name, 60), runeStart(name, len(name)-90)
		name = name[:head] + "…" + name[tail:]
	}
	return viz.Escape(name)
}

// scriptChain names the scripts of fs, each sourcing the next.
func scriptChain(fs []scriptFrame) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = scriptName(f.name)
	}
	return strings.Join(names, " → ")
}
