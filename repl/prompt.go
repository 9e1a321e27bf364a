package repl

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	prompt "github.com/c-bata/go-prompt"

	"stepbox/primitives"
	"stepbox/primitives/step"
	"stepbox/viz"
)

// ttyParser wraps go-prompt's terminal reader. go-prompt v0.2.6 takes
// whatever one read(2) returns as a single key, so text and Enter typed
// fast, or pasted, arrive as one unknown key and the line is lost. The
// wrapper hands them over one key at a time: a run of text, or one
// control byte. After Enter it reads nothing more until the next Input:
// go-prompt drops what its reader reads after the line ends. It also
// notices Ctrl-D, which Input returns as "" like an empty line, and the
// terminal hanging up, which it hands go-prompt as a Ctrl-D; and it
// drops what the terminal typed on its own, its reports (reportFilter).
type ttyParser struct {
	*prompt.PosixParser
	reports reportFilter // what the terminal typed on its own, dropped
	pending []byte
	held    bool // a line has ended: the rest waits for the next Input
	sawEOF  bool
	hungUp  bool
	hangup  sync.Once
	clear   func() // Ctrl-L: stepbox's clearScreen, not go-prompt's
}

func (p *ttyParser) Setup() error {
	p.held = false
	return p.PosixParser.Setup()
}

func (p *ttyParser) Read() ([]byte, error) {
	if p.held {
		return nil, syscall.EAGAIN
	}
	if len(p.pending) == 0 {
		b, err := p.PosixParser.Read()
		if err == syscall.EAGAIN || err == syscall.EINTR {
			return nil, syscall.EAGAIN // nothing typed yet
		}
		if err != nil || len(b) == 0 {
			// read(2) found end of file or failed: the terminal hung up
			// (its window closed, the ssh connection dropped). That is a
			// SIGHUP, whether or not the kernel sends one: tear down and
			// leave as for one. Meanwhile go-prompt sees Ctrl-D.
			p.held, p.sawEOF, p.hungUp = true, true, true
			p.hangup.Do(func() { syscall.Kill(os.Getpid(), syscall.SIGHUP) })
			return []byte{0x04}, nil
		}
		if b = p.reports.strip(b, time.Now()); len(b) == 0 {
			return nil, syscall.EAGAIN // a report, no key
		}
		p.pending = b
	}
	b := nextKey(&p.pending)
	if len(b) == 1 {
		switch b[0] {
		case '\r', '\n':
			p.held = true
		case 0x04:
			p.sawEOF = true
		case 0x0c:
			// An empty key: go-prompt inserts nothing and redraws the line
			// where clearScreen left the cursor.
			p.clear()
			return []byte{}, nil
		}
	}
	return b, nil
}

// discard drops the keys read but not yet handed to go-prompt and says
// how many bytes they were.
func (p *ttyParser) discard() int {
	n := len(p.pending)
	p.pending = nil
	return n
}

// GetWinSize is the terminal's size as go-prompt gets it, as each Input
// starts (its Run, which stepbox does not use, on SIGWINCH too). go-prompt divides by the width (and lays its menu out
// by the height), so a terminal of 0 columns or rows, a pty no one sized
// (script(1) reading a pipe makes one) or one resized to 0, is read as
// $COLUMNS and $LINES, else 80×24, as outputWidth and Record do; it
// crashed the session at the first Enter (ut35 G4).
func (p *ttyParser) GetWinSize() *prompt.WinSize {
	ws := p.PosixParser.GetWinSize()
	if ws.Col == 0 {
		ws.Col = envSize("COLUMNS", viz.DefaultWidth)
	}
	if ws.Row == 0 {
		ws.Row = envSize("LINES", 24)
	}
	return ws
}

// envSize is the positive count in the environment variable name, else def.
func envSize(name string, def uint16) uint16 {
	if n, err := strconv.ParseUint(os.Getenv(name), 10, 16); err == nil && n > 0 {
		return uint16(n)
	}
	return def
}

// handTerminal gives the terminal to a program stepbox starts (sh, enter,
// a host command) with the settings stepbox found. Keys typed ahead that
// stepbox's reader already holds cannot reach that program: they are
// dropped, said so, rather than run at stepbox's prompt afterwards.
func (sh *Shell) handTerminal() {
	sh.Terminal.Restore()
	if sh.typeahead == nil {
		return
	}
	if n := sh.typeahead.discard(); n > 0 {
		sh.say("%s", sh.dim("(dropped "+step.Count(n, "byte")+" typed ahead, already read by stepbox's prompt)"))
	}
}

// nextKey takes one key off the front of buf: an escape sequence whole,
// a run of text, or one control byte.
func nextKey(buf *[]byte) []byte {
	b := *buf
	n := len(b)
	switch {
	case b[0] == 0x1b:
		n = escapeLen(b)
	case b[0] < 0x20 || b[0] == 0x7f:
		n = 1
	default:
		for i, c := range b {
			if c < 0x20 || c == 0x7f {
				n = i
				break
			}
		}
	}
	*buf = b[n:]
	return b[:n]
}

// escapeLen is the length of the escape sequence b starts with (ECMA-48):
// a CSI (ESC [, parameters, one final byte from @ to ~), an SS3 (ESC O
// and one byte), ESC and one byte (Alt+key), or a lone ESC.
func escapeLen(b []byte) int {
	switch {
	case len(b) == 1:
		return 1
	case b[1] == '[':
		for i := 2; i < len(b); i++ {
			if b[i] >= 0x40 && b[i] <= 0x7e {
				return i + 1
			}
		}
		return len(b)
	case b[1] == 'O' && len(b) >= 3:
		return 3
	}
	return 2
}

// Interactive runs the REPL on the terminal until `exit` or Ctrl-D.
//
// go-prompt v0.2.6's Run loop calls os.Exit on SIGINT/SIGTERM, skipping
// every deferred teardown; so stepbox drives Prompt.Input one line at a
// time, owns the signals itself and leaves by returning, never os.Exit.
func (sh *Shell) Interactive(term *primitives.Terminal) error {
	sh.prompting.Store(true)
	defer sh.prompting.Store(false)
	sh.Terminal = term
	parser := &ttyParser{PosixParser: prompt.NewStandardInputParser(), clear: sh.clearScreen}
	sh.typeahead = parser
	opts := append([]prompt.Option{
		prompt.OptionParser(parser),
		prompt.OptionLivePrefix(func() (string, bool) { return sh.Prompt(), true }),
		prompt.OptionTitle("stepbox"),
		prompt.OptionMaxSuggestion(8),
		prompt.OptionCompletionWordSeparator(" "),
	}, promptColors(sh.Theme.Name)...)
	p := prompt.New(func(string) {}, sh.completer, opts...)
	// Ctrl-C while a command runs cancels that command, never the session.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	// Ctrl-Z while a command runs would stop stepbox itself (its process
	// group is the terminal's foreground one then), and with it the live
	// view, while the boxes run on: caught, not ignored (an ignored signal
	// stays ignored across execve, in every process stepbox starts), and
	// answered with where job control is.
	tstp := make(chan os.Signal, 1)
	signal.Notify(tstp, syscall.SIGTSTP)
	defer signal.Stop(tstp)
	go func() {
		for range tstp {
			fmt.Fprintln(sh.Err, sh.dim("\nCtrl-Z: stepbox's commands have no job control; Ctrl-C stops this one, and `sh` in the box has Ctrl-Z and fg"))
		}
	}()
	sh.say("%s", sh.dim("stepbox: build a container one kernel step at a time. `help` lists the commands, Tab completes, Ctrl-D leaves."))
	eofArmed := false
	for !sh.exit {
		sh.Width = outputWidth(term)
		parser.sawEOF = false
		line := p.Input()
		term.Restore()
		// Again: the window may have been resized while the line was typed.
		sh.Width = outputWidth(term)
		if line == "" && parser.sawEOF {
			if !parser.hungUp && !eofArmed && sh.confirmEOF() {
				eofArmed = true
				continue
			}
			fmt.Fprintln(sh.Out, "exit")
			break
		}
		eofArmed = false
		if strings.TrimSpace(line) == "" {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		sh.signals = make(chan os.Signal, 4)
		go func(fwd chan<- os.Signal) {
			for {
				select {
				case s := <-sigs:
					if !sh.forwarding.Load() {
						cancel()
						return
					}
					select {
					case fwd <- s:
					default:
					}
				case <-ctx.Done():
					return
				}
			}
		}(sh.signals)
		if err := sh.Execute(ctx, line); err != nil {
			sh.reportError(err)
		}
		cancel()
		// A signal that raced the end of the command must not cancel the next.
		for len(sigs) > 0 {
			<-sigs
		}
	}
	return nil
}

// clearScreen clears the terminal (`clear`, Ctrl-L) and writes one line
// at its top, so the prompt never sits on the top row: tmux (its
// scroll-on-clear option, on by default) copies the whole screen into its
// history when the screen is erased from the top-left corner, as
// go-prompt erases a line it ends there, and every such line would be in
// the scrollback twice.
func (sh *Shell) clearScreen() {
	if sh.Terminal == nil || sh.Theme.Plain {
		return
	}
	fmt.Fprint(sh.Out, "\x1b[H\x1b[2J")
	sh.say("%s", sh.dim("── screen cleared; `history` lists the commands so far"))
}

// confirmEOF answers a Ctrl-D at an empty prompt while boxes run, and
// reports whether it did: leaving tears every box down, which one stray
// key should not do to a class's work. A second Ctrl-D in a row leaves,
// as bash's ignoreeof asks for `exit` (bash: set -o ignoreeof).
func (sh *Shell) confirmEOF() bool {
	boxes := sh.Session.Boxes()
	if len(boxes) == 0 {
		return false
	}
	names := make([]string, len(boxes))
	for i, b := range boxes {
		names[i] = b.Name
	}
	sh.say("%s", sh.dim(fmt.Sprintf("Ctrl-D: leaving tears down %s %s; Ctrl-D again (or `exit`) leaves, anything else stays",
		step.Plural(len(names), "box"), strings.Join(names, ", "))))
	return true
}

// forwardSignals hands the terminal's Ctrl-C and Ctrl-\ to a box
// command that runs while the learner's terminal is stepbox's (`enter --
// CMD`), until done is called: the channel to give it (nil outside the
// interactive prompt). Ctrl-Z is caught for the whole prompt (Run). A command
// with a pty of its own (sh) needs none of this: its terminal makes the
// signals.
func (sh *Shell) forwardSignals() (<-chan os.Signal, func()) {
	sh.forwarding.Store(true)
	return sh.signals, func() {
		sh.forwarding.Store(false)
	}
}

// promptColors are go-prompt's colours for a theme. go-prompt takes its
// own colour names, not lipgloss styles; plain (NO_COLOR, --plain) keeps
// the terminal's default colours everywhere.
func promptColors(theme string) []prompt.Option {
	type colors struct{ prefix, sugBG, sugText, descBG, descText, selBG, selText prompt.Color }
	c := colors{prompt.Cyan, prompt.DarkGray, prompt.White, prompt.Black, prompt.LightGray, prompt.Cyan, prompt.Black}
	switch theme {
	case "plain":
		c = colors{}
	case "contrast":
		// For projectors: white on black, the selection black on yellow.
		c = colors{prompt.Yellow, prompt.Black, prompt.White, prompt.Black, prompt.White, prompt.Yellow, prompt.Black}
	}
	return []prompt.Option{
		prompt.OptionPrefixTextColor(c.prefix),
		prompt.OptionSuggestionBGColor(c.sugBG),
		prompt.OptionSuggestionTextColor(c.sugText),
		prompt.OptionDescriptionBGColor(c.descBG),
		prompt.OptionDescriptionTextColor(c.descText),
		prompt.OptionSelectedSuggestionBGColor(c.selBG),
		prompt.OptionSelectedSuggestionTextColor(c.selText),
		prompt.OptionSelectedDescriptionBGColor(c.selBG),
		prompt.OptionSelectedDescriptionTextColor(c.selText),
	}
}

// completer feeds go-prompt from the command table.
func (sh *Shell) completer(d prompt.Document) []prompt.Suggest {
	text := d.TextBeforeCursor()
	// Nothing typed, the menu of every command only on Tab: offered under
	// each fresh prompt, it would push the last step's panel off the screen.
	if strings.TrimSpace(text) == "" {
		if d.LastKeyStroke() == prompt.Tab {
			return toSuggest(commandSuggestions(commands))
		}
		return nil
	}
	if strings.HasPrefix(strings.TrimSpace(text), "!") {
		return nil
	}
	words := strings.Fields(text)
	if len(words) == 0 || (len(words) == 1 && !strings.HasSuffix(text, " ")) {
		word := ""
		if len(words) == 1 {
			word = words[0]
		}
		return toSuggest(filterPrefix(commandSuggestions(commands), word))
	}
	// A finished word before the cursor: complete the next one.
	partial := ""
	if !strings.HasSuffix(text, " ") {
		partial = words[len(words)-1]
		words = words[:len(words)-1]
	}
	sugg := sh.Complete(words, partial)
	return toSuggest(sugg)
}

// Complete returns suggestions for the word after words (partial is what
// is typed of it so far). Scripted tests call it directly.
func (sh *Shell) Complete(words []string, partial string) []Suggestion {
	c := findCommand(commands, words[0])
	if c == nil {
		return nil
	}
	args := words[1:]
	for len(c.Sub) > 0 && len(args) > 0 {
		s := findCommand(c.Sub, args[0])
		if s == nil {
			break
		}
		c, args = s, args[1:]
	}
	var out []Suggestion
	if len(c.Sub) > 0 && len(args) == 0 {
		out = commandSuggestions(c.Sub)
	} else if c.Complete != nil {
		out = c.Complete(sh, append(args, partial))
	}
	if strings.HasPrefix(partial, "--") || (partial == "" && len(out) == 0) {
		for _, f := range c.Flags {
			out = append(out, Suggestion{Text: "--" + f.Name, Description: f.Help})
		}
	}
	return filterPrefix(out, partial)
}

func commandSuggestions(list []*Command) []Suggestion {
	var out []Suggestion
	for _, c := range list {
		out = append(out, Suggestion{Text: c.Name, Description: c.Summary})
	}
	return out
}

func filterPrefix(s []Suggestion, prefix string) []Suggestion {
	var out []Suggestion
	for _, x := range s {
		if strings.HasPrefix(x.Text, prefix) {
			out = append(out, x)
		}
	}
	return out
}

func toSuggest(s []Suggestion) []prompt.Suggest {
	out := make([]prompt.Suggest, len(s))
	for i, x := range s {
		out[i] = prompt.Suggest{Text: x.Text, Description: x.Description}
	}
	return out
}
