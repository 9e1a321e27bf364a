package repl

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	prompt "github.com/c-bata/go-prompt"

	"stepbox/primitives"
)

// ttyParser wraps go-prompt's terminal reader to notice Ctrl-D: go-prompt's
// Input returns "" both for Ctrl-D and for an empty line.
type ttyParser struct {
	*prompt.PosixParser
	sawEOF bool
}

func (p *ttyParser) Read() ([]byte, error) {
	b, err := p.PosixParser.Read()
	if len(b) == 1 && b[0] == 0x04 {
		p.sawEOF = true
	}
	return b, err
}

// Interactive runs the REPL on the terminal until `exit` or Ctrl-D.
//
// go-prompt v0.2.6's Run loop calls os.Exit on SIGINT/SIGTERM, skipping
// every deferred teardown; so stepbox drives Prompt.Input one line at a
// time, owns the signals itself and leaves by returning, never os.Exit.
func (sh *Shell) Interactive(term *primitives.Terminal) error {
	sh.Terminal = term
	parser := &ttyParser{PosixParser: prompt.NewStandardInputParser()}
	p := prompt.New(func(string) {}, sh.completer,
		prompt.OptionParser(parser),
		prompt.OptionLivePrefix(func() (string, bool) { return sh.Prompt(), true }),
		prompt.OptionTitle("stepbox"),
		prompt.OptionPrefixTextColor(prompt.Cyan),
		prompt.OptionSuggestionBGColor(prompt.DarkGray),
		prompt.OptionSuggestionTextColor(prompt.White),
		prompt.OptionDescriptionBGColor(prompt.Black),
		prompt.OptionDescriptionTextColor(prompt.LightGray),
		prompt.OptionSelectedSuggestionBGColor(prompt.Cyan),
		prompt.OptionSelectedDescriptionBGColor(prompt.Cyan),
		prompt.OptionMaxSuggestion(8),
		prompt.OptionCompletionWordSeparator(" "),
	)
	// Ctrl-C while a command runs cancels that command, never the session.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	fmt.Fprintln(sh.Out, sh.Theme.Dim.Render("stepbox: build a container one kernel step at a time. `help` lists the commands, Tab completes, Ctrl-D leaves."))
	for !sh.exit {
		if w := term.Width(); w >= 80 {
			sh.Width = w
		}
		parser.sawEOF = false
		line := p.Input()
		term.Restore()
		if line == "" && parser.sawEOF {
			fmt.Fprintln(sh.Out, "exit")
			break
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := sh.Execute(ctx, line); err != nil {
			fmt.Fprintln(sh.Err, sh.Theme.Bad.Render("error:")+" "+err.Error())
		}
		cancel()
		// A signal that raced the end of the command must not cancel the next.
		for len(sigs) > 0 {
			<-sigs
		}
	}
	return nil
}

// completer feeds go-prompt from the command table.
func (sh *Shell) completer(d prompt.Document) []prompt.Suggest {
	text := d.TextBeforeCursor()
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
