package repl

import (
	"fmt"
	"sort"
	"strings"

	"stepbox/primitives/step"
)

// Command is one entry of the command table. The prompt's completer, the
// script runner, `help` and `explain` all read it.
type Command struct {
	Name     string
	Group    string // box, namespaces, filesystem, cgroups, processes, lessons, session
	Usage    string // e.g. "unshare TYPE… [--boottime DUR] [--monotonic DUR]"
	Summary  string // one line, shown beside completions
	Kernel   string // what the kernel does, for `help CMD`
	Example  string
	Man      string
	MinArgs  int
	MaxArgs  int    // -1: any number
	Flags    []Flag // flags may stand anywhere among the arguments
	RawArgs  bool   // pass words through untouched (exec, enter): no flag parsing
	NeedsBox bool
	Recorded bool // a successful run is a step worth saving in `save`
	Sub      []*Command
	Complete func(sh *Shell, args []string) []Suggestion
	Run      func(sh *Shell, c *Call) error
	// Plan returns the record Run would write, from the primitive's own
	// plan, without running anything: `explain CMD…`. Every command that
	// changes the kernel has one.
	Plan func(sh *Shell, c *Call) (*step.Step, error)

	parent *Command
}

// Flag is a --name, with or without a value.
type Flag struct {
	Name  string // without the dashes
	Value string // "" for a switch, else what the value is (DUR, PATH…)
	Help  string
}

// Suggestion is one completion with its one-line description.
type Suggestion struct {
	Text        string
	Description string
}

// Call is a parsed command line.
type Call struct {
	Args  []string
	Flags map[string]string // switches map to "true"
}

// Has reports whether a flag was given.
func (c *Call) Has(name string) bool { _, ok := c.Flags[name]; return ok }

func (c *Command) path() string {
	if c.parent != nil {
		return c.parent.path() + " " + c.Name
	}
	return c.Name
}

// adopt links c's subcommands to it, at every depth (`cgroup devices allow`).
func adopt(c *Command) {
	for _, s := range c.Sub {
		s.parent = c
		if s.Group == "" {
			s.Group = c.Group
		}
		adopt(s)
	}
}

// commands is the table. Each group's file adds its commands in init.
var commands []*Command

func register(cs ...*Command) {
	for _, c := range cs {
		adopt(c)
	}
	commands = append(commands, cs...)
	sort.SliceStable(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
}

// Commands returns the command table.
func Commands() []*Command { return commands }

func findCommand(list []*Command, name string) *Command {
	for _, c := range list {
		if c.Name == name {
			return c
		}
	}
	return nil
}

func names(list []*Command) string {
	var n []string
	for _, c := range list {
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

// lookup finds the command the words name, descending into sub-commands.
func lookup(words []string) (*Command, []string, error) {
	c := findCommand(commands, words[0])
	if c == nil {
		return nil, nil, unknownCommand(words[0])
	}
	args := words[1:]
	for len(c.Sub) > 0 {
		if len(args) == 0 {
			if c.Run != nil {
				return c, args, nil
			}
			return nil, nil, &CommandError{Cmd: c.path(), Err: fmt.Errorf("what should %s do? one of: %s", c.Name, names(c.Sub))}
		}
		s := findCommand(c.Sub, args[0])
		if s == nil {
			if c.Run != nil && c.MaxArgs != 0 {
				break
			}
			return nil, nil, unknownSub(c, args[0])
		}
		c, args = s, args[1:]
	}
	return c, args, nil
}

// parse separates flags from arguments and checks their number.
func (c *Command) parse(words []string) (*Call, error) {
	call := &Call{Flags: map[string]string{}}
	if c.RawArgs {
		call.Args = words
	} else {
		for i := 0; i < len(words); i++ {
			w := words[i]
			if w == "--" {
				call.Args = append(call.Args, words[i+1:]...)
				break
			}
			if !strings.HasPrefix(w, "--") || len(w) == 2 {
				call.Args = append(call.Args, w)
				continue
			}
			name, value, hasValue := strings.Cut(w[2:], "=")
			f := c.flag(name)
			if f == nil {
				return nil, fmt.Errorf("unknown flag --%s: %s%s", clip(name), c.flagList(), didYouMean("--"+name, c.flagNames()))
			}
			if f.Value == "" {
				if hasValue {
					return nil, fmt.Errorf("--%s takes no value", name)
				}
				value = "true"
			} else if !hasValue {
				if i+1 >= len(words) {
					return nil, fmt.Errorf("--%s needs a value (%s)", name, f.Value)
				}
				i++
				value = words[i]
			}
			if _, dup := call.Flags[name]; dup {
				return nil, fmt.Errorf("--%s given twice", name)
			}
			call.Flags[name] = value
		}
	}
	n := len(call.Args)
	switch {
	case n < c.MinArgs:
		return nil, fmt.Errorf("missing argument: usage: %s", c.Usage)
	case c.MaxArgs >= 0 && n > c.MaxArgs:
		extra := call.Args[c.MaxArgs]
		return nil, fmt.Errorf("unexpected argument %q: usage: %s", clip(extra), c.Usage)
	}
	return call, nil
}

func (c *Command) flag(name string) *Flag {
	for i := range c.Flags {
		if c.Flags[i].Name == name {
			return &c.Flags[i]
		}
	}
	return nil
}

func (c *Command) flagNames() []string {
	var f []string
	for _, x := range c.Flags {
		f = append(f, "--"+x.Name)
	}
	return f
}

func (c *Command) flagList() string {
	if len(c.Flags) == 0 {
		return c.path() + " takes no flags"
	}
	return c.path() + " takes " + strings.Join(c.flagNames(), ", ")
}

// clip shortens a word the learner typed for quoting in an error: an
// error stays one readable line whatever was pasted.
func clip(word string) string { return clipTo(word, 40) }

// clipTo keeps the first most runes of word, marking a cut with "…".
func clipTo(word string, most int) string {
	r := []rune(word)
	if len(r) <= most {
		return word
	}
	return string(r[:most]) + "…"
}
