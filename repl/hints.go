package repl

import (
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"stepbox/viz"
	"strings"

	"stepbox/primitives"
	"stepbox/primitives/layers"
)

// didYouMean names the words of set nearest to typed (primitives.DidYouMean).
func didYouMean(typed string, set []string) string { return primitives.DidYouMean(typed, set) }

// unknownCommand is the error for a first word that names no command:
// the nearest commands, or where the list is.
func unknownCommand(word string) error {
	near := didYouMean(word, commandNames(commands))
	if near == "" {
		near = ": `help` lists the commands"
	}
	return &CommandError{Cmd: clip(word), Err: fmt.Errorf("unknown command %q%s", clip(word), near)}
}

// unknownSub is the error for a word after c that names none of its
// sub-commands.
func unknownSub(c *Command, word string) error {
	return &CommandError{Cmd: c.path(), Err: fmt.Errorf("unknown %s command %q: use one of %s%s", c.Name, clip(word), names(c.Sub), didYouMean(word, commandNames(c.Sub)))}
}

func commandNames(list []*Command) []string {
	var out []string
	for _, c := range list {
		out = append(out, c.Name)
	}
	return out
}

// notACommand is the error for a line whose first word is no stepbox
// command. A program's name (on the box's PATH or the host's) is most
// likely meant to run: say how, in the box and on the host.
func (sh *Shell) notACommand(word, line string) error {
	if strings.Contains(word, "/") {
		return unknownCommand(word)
	}
	inBox, onHost := false, false
	if b := sh.Current(); b != nil {
		_, err := b.LookPath(word)
		inBox = err == nil
	}
	if _, err := exec.LookPath(word); err == nil {
		onHost = true
	}
	line = clip(line)
	var how string
	switch b := sh.Current(); {
	case inBox && onHost:
		how = fmt.Sprintf("`exec %s` runs it in box %s, `!%s` on the host", line, b.Name, line)
	case inBox:
		how = fmt.Sprintf("`exec %s` runs it in box %s", line, b.Name)
	case onHost && b != nil:
		how = fmt.Sprintf("`!%s` runs it on the host (box %s has no %s on its PATH)", line, b.Name, word)
	case onHost:
		how = fmt.Sprintf("`!%s` runs it on the host; `exec %s` runs it in a box, once `new` has made one", line, line)
	default:
		return unknownCommand(word)
	}
	near := "" // a short name is near too many: ls is not a typo of ps
	if len(word) >= 4 {
		near = didYouMean(word, commandNames(commands))
	}
	return &CommandError{Cmd: clip(word), Err: fmt.Errorf("%s is a program, not a stepbox command: %s%s", clip(word), how, near)}
}

// boxNamed finds the box called name, and when there is none, the
// nearest name of a box there is.
func (sh *Shell) boxNamed(name string) (*primitives.Box, error) {
	b, err := sh.Session.Box(name)
	if err != nil {
		err = fmt.Errorf("%w%s", err, didYouMean(name, sh.Session.BoxNames()))
	}
	return b, err
}

// nearLayer adds to err, when it says store has no layer name, the
// nearest layer it has but for those given already (the other layers of
// the same stack).
func nearLayer(store *layers.Store, name string, given []string, err error) error {
	all, lerr := store.List()
	if !errors.Is(err, layers.ErrNoLayer) || lerr != nil {
		return err
	}
	var names []string
	for _, l := range all {
		if !slices.Contains(given, l.Name) {
			names = append(names, l.Name)
		}
	}
	return fmt.Errorf("%w%s", err, didYouMean(name, names))
}

// lookupNamespace finds the namespace type a word names, and when none,
// the nearest.
func lookupNamespace(word string) (primitives.NamespaceType, error) {
	t, err := primitives.LookupNamespace(word)
	if err != nil {
		err = fmt.Errorf("%w%s", err, didYouMean(word, append(primitives.NamespaceTypeNames(), "all")))
	}
	return t, err
}

// closedWord checks that word is one of set, the only words cmd takes
// for what; else the error names the set and the nearest of it.
func closedWord(cmd, what, word string, set []string) error {
	if slices.Contains(set, word) {
		return nil
	}
	return fmt.Errorf("%s %s: unknown %s: use %s%s", cmd, clip(word), what, strings.Join(set, ", "), didYouMean(word, set))
}

// fullScreen are programs that draw the whole screen or read keys, and
// so need a terminal, with the way (if any) they print text instead.
var fullScreen = map[string]string{
	"top": "`exec top -b -n 1` prints one screen as text", "htop": "",
	"vi": "", "vim": "", "nvim": "", "nano": "", "emacs": "", "mc": "",
	"watch": "", "tmux": "", "screen": "",
}

// shells are the programs that, given no command, read one from a
// terminal.
var shells = []string{"sh", "ash", "bash", "dash", "zsh", "ksh", "mksh"}

// interactiveShell reports whether argv is a shell given no command or
// script, which reads its commands from the terminal.
func interactiveShell(argv []string) bool {
	return slices.Contains(shells, filepath.Base(argv[0])) &&
		!slices.ContainsFunc(argv[1:], func(a string) bool { return a == "-c" || !strings.HasPrefix(a, "-") })
}

// handOver announces that the terminal goes to a program in the box
// until it exits, as `sh` and an interactive `enter` do.
func (sh *Shell) handOver(what string) {
	for i, l := range wrapWords(what+"; `exit` comes back to stepbox, "+primitives.DetachKeys+" kills it and comes back", sh.Width-3) {
		lead := "── "
		if i > 0 {
			lead = "   "
		}
		fmt.Fprintln(sh.Out, sh.Theme.Dim.Render(lead+l))
	}
}

// needsTerminal says why argv cannot run under exec, whose stdio is never
// a terminal (stdin is /dev/null, the output a pipe stepbox prints from),
// or "" when it can.
func (sh *Shell) needsTerminal(argv []string) string {
	name := filepath.Base(argv[0])
	args := argv[1:]
	if b := sh.Current(); !strings.Contains(argv[0], "/") && b != nil {
		if _, err := b.LookPath(name); err != nil {
			return "" // not there to run: exec says so
		}
	}
	where := "`sh`, which hands the box your terminal"
	if sh.Terminal == nil {
		where = "`sh` in stepbox on a terminal"
	}
	const none = "exec gives none (the output is piped back to stepbox)"
	switch text, ok := fullScreen[name]; {
	case name == "top" && slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "-") && strings.Contains(a, "b") }):
		return "" // batch mode: text, no terminal needed
	case ok:
		msg := fmt.Sprintf("%s draws the whole screen and reads keys, so it needs a terminal; %s. Run it from %s", name, none, where)
		if text != "" {
			msg += "; " + text
		}
		return msg
	case interactiveShell(argv):
		return fmt.Sprintf("an interactive shell needs a terminal; %s. Open one with %s; `exec %s -c 'CMD'` runs one command", none, where, name)
	}
	return ""
}

// wrapWords folds s at words to w columns, as lines to print each with
// a lead of its own.
func wrapWords(s string, w int) []string { return strings.Split(viz.Wrap(s, w, ""), "\n") }
