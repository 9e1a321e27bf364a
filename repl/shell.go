// Package repl is stepbox's command language: one command table drives the
// interactive prompt, the script runner, `help` and `explain` alike.
package repl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"
	"sync/atomic"

	"mvdan.cc/sh/v3/shell"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
	"stepbox/viz"
)

// Shell is one stepbox session as the learner drives it.
type Shell struct {
	Session *primitives.Session
	Out     io.Writer
	Err     io.Writer
	Theme   viz.Theme
	Width   int
	// Terminal is the learner's terminal for `sh` and `enter` (nil when
	// stepbox reads a script or a pipe).
	Terminal *primitives.Terminal
	// Watch, when set, sees every line Execute runs: the open lesson
	// checks its step after it, a recording keeps typed lines (lesson_watch.go).
	Watch *Watch
	// hostRootWarned holds the IDs of the boxes whose `exec` has said it
	// acts on the host's files (cmd_proc.go's warnHostRoot).
	hostRootWarned map[string]bool
	// bundles are the bundles `export bundle` wrote: their rootfs is
	// checked as a box's tree by `!` (host_boxpath.go).
	bundles []exportedBundle

	typeahead *ttyParser // the prompt's reader, holding keys typed ahead

	current  string
	explain  bool
	lastStep *step.Step
	history  []string      // lines that succeeded, for `history` and `save`
	scripts  []scriptFrame // the scripts being read, each sourcing the next (script.go)
	exit     bool
	// interrupt is cancelled by Ctrl-C while a command runs.
	interrupt context.Context
	// forwarding, while a box command reads the terminal (sh, enter),
	// sends Ctrl-C and Ctrl-\ to signals instead of cancelling the line:
	// the command has no controlling terminal (setsid), so the terminal's
	// signals reach stepbox's process group, which passes them on.
	forwarding atomic.Bool
	signals    chan os.Signal
	// leaving: a signal (SIGTERM, SIGHUP) is tearing the session down,
	// after which the process exits (Leave).
	leaving atomic.Bool
	// prompting: Interactive runs, whose own handler takes Ctrl-\
	// (SIGQUIT) to stop the command under way; the session's (runShell)
	// leaves it to it.
	prompting atomic.Bool

	layerStore layerStore
	imageStore imageStore
	lastCgroup *cgroups.Snapshot // the previous cgroup panel's reading, for CPU rates
	web        *liveView         // the live view, when `web on` (web_live.go)
	outNull    bool              // Out is the null device (unseen.go)
	// outTTY and errTTY say that Out and Err reach a terminal, or a
	// recording a terminal plays; oneTTY, that both are one terminal.
	// outFile and errFile say that they reach a file or pipe other than
	// the null device: a transcript, which a terminal shows later;
	// oneFile, that both are one file (`> log 2>&1`). A box command's
	// output to any of them is filtered (boxStdio).
	outTTY, errTTY, oneTTY    bool
	outFile, errFile, oneFile bool
}

// NewShell makes a shell over an open session.
func NewShell(s *primitives.Session, out, errw io.Writer, theme viz.Theme, width int) *Shell {
	width = max(width, viz.MinWidth)
	if s != nil {
		theme.State = s.Dirs.State()
	}
	return &Shell{Session: s, Out: out, Err: errw, Theme: theme, Width: width, interrupt: context.Background()}
}

// Exited reports whether `exit` was given.
func (sh *Shell) Exited() bool { return sh.exit }

// Current returns the current box, or nil.
func (sh *Shell) Current() *primitives.Box {
	if sh.current == "" {
		return nil
	}
	b, err := sh.Session.Box(sh.current)
	if err != nil {
		return nil
	}
	return b
}

// Prompt is the prompt text: the current box and its stage, e.g.
// web[uts,mnt,pid|overlay|cg] ▸ . It stays short whatever the box has:
// up to promptNamespaces namespaces are named, more are counted
// (web[7 ns|pivot|cg] ▸, as `boxes` counts them), and a long box name
// is cut (`help` explains the prompt; `status` says it all in words).
func (sh *Shell) Prompt() string {
	b := sh.Current()
	if b == nil {
		return "stepbox ▸ "
	}
	return fmt.Sprintf("%s[%s] ▸ ", clipTo(b.Name, promptName), stage(b))
}

// The prompt names at most promptNamespaces namespaces and shows at most
// promptName characters of a box's name: with both, the longest prompt
// (a 32-character name, 8 namespaces, chroot, cg) is 36 columns.
const (
	promptNamespaces = 3
	promptName       = 16
)

// stage says how far box b has come: its own namespaces, then its root
// (overlay, pivot or chroot), then cg once it has a cgroup.
func stage(b *primitives.Box) string {
	var parts []string
	switch ns := b.Unshared(); {
	case len(ns) > promptNamespaces:
		parts = append(parts, fmt.Sprintf("%d ns", len(ns)))
	case len(ns) > 0:
		parts = append(parts, strings.Join(ns, ","))
	}
	if r := rootStage(b.FS()); r != "" {
		parts = append(parts, r)
	}
	if b.Cgroup() != nil {
		parts = append(parts, "cg")
	}
	return strings.Join(parts, "|")
}

// rootStage names what the filesystem steps have made of the box's root.
func rootStage(f primitives.BoxFS) string {
	switch {
	case f.Pivoted:
		return "pivot"
	case f.Chrooted:
		return "chroot"
	case f.Merged != "":
		return "overlay"
	}
	return ""
}

// CommandError is a failure of one command, already phrased for the learner.
type CommandError struct {
	Cmd string
	Err error
}

func (e *CommandError) Error() string {
	msg := e.Err.Error()
	if e.Cmd == "" || strings.HasPrefix(msg, e.Cmd+" ") || strings.HasPrefix(msg, e.Cmd+":") {
		return msg
	}
	return e.Cmd + ": " + msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExitError is an `exec` or `!` command that ran and exited non-zero.
type ExitError struct {
	Cmd    string
	Status primitives.ExitStatus
	Hits   limitHits // what the box's cgroup refused it meanwhile
	Stderr string    // the end of what it wrote to stderr
	// Interrupted names the signal the learner sent it from the
	// terminal (Ctrl-C: SIGINT), which ended it: not an error.
	Interrupted string
}

func (e *ExitError) Error() string {
	if e.Interrupted != "" {
		how := e.Interrupted
		if e.Status.Signal != "" && e.Status.Signal != e.Interrupted {
			how += ", then killed by " + e.Status.Signal
		}
		return fmt.Sprintf("interrupted: %s (%s)", e.Cmd, how)
	}
	if c := e.Status.EndedStopped; c != nil {
		pid, how := stoppedCommand(*c)
		return fmt.Sprintf("%s: the command (%s) was %s and stayed so for %s: with no terminal of yours to press Ctrl-C in, stepbox ended it (SIGKILL to its process group)",
			e.Cmd, pid, how, c.For)
	}
	msg := fmt.Sprintf("%s: exit status %d", e.Cmd, e.Status.Code)
	if e.Status.Signal != "" {
		msg = fmt.Sprintf("%s: killed by %s", e.Cmd, e.Status.Signal)
	}
	if e.Status.Full != "" {
		msg += "; " + e.Status.Full
	}
	return msg
}

// Leave says that a signal is tearing the session down, in another
// goroutine that exits the process once done: no line starts from now
// on, and the one under way, which the teardown ends, reports nothing.
// A script went on to its next lines meanwhile, which failed on boxes
// half torn down ("open /proc/N/root/: no such file", ut33 F3).
func (sh *Shell) Leave() { sh.leaving.Store(true) }

// holdIfLeaving waits for the process's exit once Leave was called.
func (sh *Shell) holdIfLeaving() {
	if sh.leaving.Load() {
		select {}
	}
}

// Execute runs one line: a command, a `!` host command, or a comment.
func (sh *Shell) Execute(ctx context.Context, line string) (err error) {
	sh.holdIfLeaving()
	defer sh.holdIfLeaving()
	// A lesson marks a command meant to fail with a leading '-', as a
	// script does; typed as shown, it runs as the command.
	if t := strings.TrimSpace(line); strings.HasPrefix(t, "-") {
		line = strings.TrimPrefix(t, "-")
	}
	sh.interrupt = ctx
	defer func() { sh.interrupt = context.Background() }()
	defer sh.Watch.Around(sh, line)(&err)
	defer func() { sh.web.afterLine(sh, line, err) }()
	trimmed := strings.TrimSpace(line)
	if trimmed == "" || strings.HasPrefix(trimmed, "#") {
		return nil
	}
	sh.web.beforeLine(line)
	if rest, ok := strings.CutPrefix(trimmed, "!"); ok {
		err := sh.hostCommand(ctx, rest)
		if err == nil {
			sh.history = append(sh.history, trimmed)
		}
		return err
	}
	cmd, call, err := sh.parseLine(trimmed)
	if err != nil || cmd == nil {
		return err
	}
	if cmd.NeedsBox && sh.Current() == nil {
		return &CommandError{Cmd: cmd.path(), Err: errors.New("there is no box yet: make one with `new NAME`")}
	}
	if err := primitives.RefuseRootless(cmd.path(), sh.Current()); err != nil {
		return err
	}
	if err := cmd.Run(sh, call); err != nil {
		var ce *CommandError
		var ee *ExitError
		if errors.As(err, &ce) || errors.As(err, &ee) {
			return err
		}
		return &CommandError{Cmd: cmd.path(), Err: err}
	}
	if cmd.Recorded {
		sh.history = append(sh.history, trimmed)
	}
	return nil
}

// parseLine splits a command line into words, finds its command and
// parses its arguments; a line of no words gives no command.
func (sh *Shell) parseLine(line string) (*Command, *Call, error) {
	words, err := sh.split(line)
	var special specialParameterError
	if errors.As(err, &special) {
		return nil, nil, &CommandError{Cmd: firstWord(line), Err: err}
	}
	if err != nil {
		err = fmt.Errorf("cannot split the line into words: %v", err)
		if strings.ContainsAny(line, "&|;<>") {
			// stepbox splits words as a shell does, but runs no shell.
			err = fmt.Errorf("%w; stepbox runs no shell of its own: for &, |, ; or a redirection, give them to one, as in `exec sh -c 'sleep 600 &'`", err)
		}
		return nil, nil, &CommandError{Cmd: firstWord(line), Err: err}
	}
	if len(words) == 0 {
		return nil, nil, nil
	}
	if findCommand(commands, words[0]) == nil {
		return nil, nil, sh.notACommand(words[0], line)
	}
	cmd, args, err := lookup(words)
	if err != nil {
		return nil, nil, err
	}
	call, err := cmd.parse(args)
	if err != nil {
		return nil, nil, &CommandError{Cmd: cmd.path(), Err: err}
	}
	return cmd, call, nil
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return clip(f[0])
	}
	return clip(s)
}

// split breaks a line into words as a POSIX shell would: quotes,
// backslashes and $VARIABLES ($BOX_PID, $BOX_ROOT and the host's).
func (sh *Shell) split(line string) ([]string, error) {
	if err := refuseNUL(line); err != nil {
		return nil, err
	}
	vars := sh.boxVars()
	special := ""
	words, err := shell.Fields(line, func(name string) string {
		if v, ok := vars[name]; ok {
			return v
		}
		if special == "" && isSpecialParameter(name) {
			special = name
		}
		return os.Getenv(name)
	})
	if err == nil && special != "" {
		// A shell's own parameters ($$, $?, $!, $1 …) have no value here:
		// stepbox splits words as a shell does but runs none, so they
		// would silently vanish.
		return nil, specialParameterError(special)
	}
	return words, err
}

// specialParameterError is a line that names a shell's own parameter.
type specialParameterError string

func (e specialParameterError) Error() string {
	return fmt.Sprintf("$%s is a shell's own parameter, and stepbox runs no shell of its own: give it to one in single quotes, as in `exec sh -c 'echo $%s'`", string(e), string(e))
}

// isSpecialParameter reports whether name is one of a POSIX shell's
// special or positional parameters: $, ?, !, #, @, *, -, 0-9.
func isSpecialParameter(name string) bool {
	if len(name) == 0 {
		return false
	}
	if strings.Contains("$?!#@*-", name) && len(name) == 1 {
		return true
	}
	for _, r := range name {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// boxVars are the variables stepbox sets: $STATE, and for the current
// box $BOX, $BOX_ID, $BOX_PID, $BOX_ROOT, $BOX_UPPER and $BOX_DIR.
func (sh *Shell) boxVars() map[string]string {
	vars := map[string]string{}
	if sh.Theme.State != "" {
		vars["STATE"] = sh.Theme.State
	}
	b := sh.Current()
	if b == nil {
		return vars
	}
	maps.Copy(vars, map[string]string{
		"BOX":      b.Name,
		"BOX_ID":   b.ID,
		"BOX_PID":  fmt.Sprint(b.CommandPID()),
		"BOX_ROOT": b.HostRoot(),
		// The overlay's writable layer, where the box's changes land;
		// empty before `mount overlay`.
		"BOX_UPPER": b.FS().Upper,
		// The box's state directory, removed with the session: a place
		// for what is written for the box, such as an exported bundle.
		"BOX_DIR": b.Dir,
	})
	return vars
}

// printStep shows a step's record when explain is on, and keeps it for `explain`.
func (sh *Shell) printStep(st *step.Step) {
	if st == nil {
		return
	}
	sh.lastStep = st
	if sh.explain {
		fmt.Fprintln(sh.Out, viz.StepPanel(st, sh.Width, sh.Theme))
	}
}

// say prints stepbox's own output, folded at words to the width; a
// line that starts with spaces keeps them on each of its lines.
func (sh *Shell) say(format string, args ...any) {
	for _, l := range strings.Split(fmt.Sprintf(format, args...), "\n") {
		body := strings.TrimLeft(l, " ")
		fmt.Fprintln(sh.Out, viz.Hang(l[:len(l)-len(body)], body, sh.Width))
	}
}

// dim folds text to the width and styles it dim, line by line (lipgloss
// pads a block of lines to its widest).
func (sh *Shell) dim(text string) string {
	lines := strings.Split(viz.Wrap(text, sh.Width, ""), "\n")
	for i, l := range lines {
		lines[i] = sh.Theme.Dim.Render(l)
	}
	return strings.Join(lines, "\n")
}

// ok prints a step's success line: "✓ " and the text folded under it.
// The text quotes what was typed or what a box named (a layer's path, a
// cgroup value): its control characters are escaped and its long lines
// cut, as error messages are (printable).
func (sh *Shell) ok(format string, args ...any) {
	sh.okStyled(printable(fmt.Sprintf(format, args...)))
}

// okStyled is ok for a text stepbox styled itself (a URL drawn as a
// command), whose escape sequences are its own: printed as it is.
func (sh *Shell) okStyled(text string) {
	fmt.Fprintln(sh.Out, viz.Hang(sh.Theme.Good.Render("✓")+" ", text, sh.Width))
}

// History returns the lines that succeeded, oldest first.
func (sh *Shell) History() []string { return append([]string(nil), sh.history...) }
