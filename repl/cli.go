package repl

import (
	"flag"
	"fmt"
	"strconv"
	"strings"

	"stepbox/lessons"
)

// cliCommand is one word after `stepbox`. The usage text, the man page
// (`stepbox __man`) and the shell completions (`stepbox completion
// SHELL`) are all written from cliCommands, so none of them can forget
// a subcommand Main knows.
type cliCommand struct {
	Name    string
	Args    string // as the usage shows them: "FILE|-"
	Summary string // may hold a newline: the usage continues under it
	// Words are the fixed words it takes first (lesson list, completion
	// bash); Lessons adds the lesson numbers; Files completes file names.
	Words   []string
	Lessons bool
	Files   bool
	// Flags defines its own flags on fs (the global ones are already
	// there); nil for none.
	Flags func(fs *flag.FlagSet)
	// Global is false for the commands the global flags change nothing of.
	Global bool
}

// cliCommands is stepbox's command line. "" is the shell itself.
var cliCommands = []cliCommand{
	{Name: "", Global: true, Summary: "the interactive shell (reads commands from stdin without a terminal)"},
	{Name: "run", Args: "FILE|-", Global: true, Files: true, Words: []string{"-"},
		Summary: "run a script of stepbox commands; stop at the first failure (exit 1)"},
	{Name: "cleanup", Global: true, Summary: "remove what crashed sessions left behind"},
	{Name: "lesson", Args: "[N]", Global: true, Lessons: true, Words: []string{"list", "reset", "check"},
		Flags:   func(fs *flag.FlagSet) { lessonFlags(fs) },
		Summary: "lesson N in the shell, from where you left it; also lesson list,\nlesson reset [N|all], lesson check [N|FILE.md…] (run the lessons' solutions)"},
	{Name: "demo", Args: "N", Global: true, Lessons: true,
		Flags:   func(fs *flag.FlagSet) { demoFlags(fs) },
		Summary: "play lesson N for a class: --auto SECONDS advances by itself, --no-pause for CI"},
	{Name: "doctor", Summary: "what this machine offers stepbox, and the one command that fixes what it lacks"},
	{Name: "completion", Args: "bash|zsh|fish", Words: completionShells,
		Summary: "print the shell completion script (make install puts it where the shell finds it)"},
	{Name: "version", Summary: "stepbox's version and the commit it was built from"},
}

// subcommands are the words Main knows after `stepbox`; help is --help's.
var subcommands = append(cliNames(), "help")

func cliNames() []string {
	var out []string
	for _, c := range cliCommands {
		if c.Name != "" {
			out = append(out, c.Name)
		}
	}
	return out
}

// cliFlag is one flag as the usage, the man page and completion show it.
type cliFlag struct {
	Name, Value, Help string
	Switch            bool     // takes no separate value word (--plain, --web[=ADDR])
	Choices           []string // the values it takes, when they are few
}

// flagsOf lists the flags fs defines, in name order.
func flagsOf(fs *flag.FlagSet) []cliFlag {
	var out []cliFlag
	fs.VisitAll(func(f *flag.Flag) {
		value, help := flag.UnquoteUsage(f)
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		isSwitch := ok && b.IsBoolFlag()
		if isSwitch && value != "" {
			value = "[" + value + "]" // --web, or --web ADDR
		}
		cf := cliFlag{Name: f.Name, Value: value, Help: help, Switch: isSwitch}
		if _, ok := f.Value.(*themeName); ok {
			cf.Choices = []string{"default", "contrast"}
		}
		out = append(out, cf)
	})
	return out
}

// globalFlagList is the global flags, as every subcommand takes them.
func globalFlagList() []cliFlag {
	return flagsOf((&globalFlags{}).flagSet("stepbox"))
}

// ownFlags is the flags subcommand c adds to the global ones.
func (c cliCommand) ownFlags() []cliFlag {
	if c.Flags == nil {
		return nil
	}
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	c.Flags(fs)
	return flagsOf(fs)
}

// line is the command as the usage's left column writes it.
func (c cliCommand) line() string {
	s := "stepbox"
	if c.Global {
		s += " [flags]"
	}
	return strings.TrimSpace(strings.Join([]string{s, c.Name, c.Args}, " "))
}

// lessonNumbers are the course's lesson numbers, as words.
func lessonNumbers() []string {
	var out []string
	for _, l := range lessons.All() {
		out = append(out, strconv.Itoa(l.Number))
	}
	return out
}

// usageText is `stepbox --help`.
func usageText() string {
	var b strings.Builder
	b.WriteString("stepbox: build a real Linux container one kernel step at a time.\n\nusage:\n")
	col := 0
	for _, c := range cliCommands {
		col = max(col, len(c.line())+2)
	}
	fcol := 0
	for _, f := range globalFlagList() {
		fcol = max(fcol, len(flagForm(f))+2)
	}
	for _, c := range cliCommands {
		lines := strings.Split(c.Summary, "\n")
		fmt.Fprintf(&b, "  %-*s%s\n", col, c.line(), lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "  %*s%s\n", col, "", l)
		}
	}
	b.WriteString("\nflags (before the command or anywhere after it):\n")
	for _, f := range globalFlagList() {
		fmt.Fprintf(&b, "  %-*s%s\n", fcol, flagForm(f), f.Help)
	}
	b.WriteString("\nInside, 'help' lists the commands.\n")
	return b.String()
}
