package repl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"stepbox/primitives"
)

// globalFlags are the flags every subcommand takes, before its name or
// after it, as a lecturer types them: `stepbox demo 2 --theme contrast`.
type globalFlags struct {
	stateDir string
	plain    bool
	theme    themeName
	record   string
}

// themeName is --theme's value, checked as it is parsed.
type themeName string

func (t *themeName) String() string { return string(*t) }

func (t *themeName) Set(v string) error {
	if v != "default" && v != "contrast" {
		return errors.New("use default or contrast")
	}
	*t = themeName(v)
	return nil
}

// flagSet is the flag set of `stepbox NAME…`: the global flags, at the
// values parsed so far (one given before the subcommand keeps its value),
// to which the subcommand adds its own.
func (g *globalFlags) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&g.stateDir, "state-dir", g.stateDir, "keep state under `DIR`")
	fs.BoolVar(&g.plain, "plain", g.plain, "no colours or escape codes")
	fs.Var(&g.theme, "theme", "colour theme `NAME`: default or contrast")
	fs.StringVar(&g.record, "record", g.record, "write an asciicast recording to `FILE`")
	fs.StringVar(&primitives.CgroupParentOverride, "cgroup-parent", primitives.CgroupParentOverride, "put stepbox's cgroups under the cgroup `PATH`")
	return fs
}

func (g *globalFlags) dirs() primitives.Dirs { return primitives.DefaultDirs(g.stateDir) }

func (g *globalFlags) shellOptions() ShellOptions {
	return ShellOptions{Plain: g.plain, Theme: string(g.theme), Record: g.record}
}

// parseFlags parses args with fs, flags anywhere among the other words
// (which it returns in order); `--` ends the flags.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(fs, err)
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(words, rest...), nil
		}
		if len(rest) == 0 {
			return words, nil
		}
		words, args = append(words, rest[0]), rest[1:]
	}
}

// flagError rephrases the flag package's error: the flag as it was typed,
// the nearest flag fs knows, and every flag it takes.
func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		var known []string
		fs.VisitAll(func(f *flag.Flag) { known = append(known, "--"+f.Name) })
		msg = "unknown flag --" + clip(strings.TrimPrefix(name, "-")) + didYouMean("--"+strings.TrimPrefix(name, "-"), known)
	} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		msg = "--" + name + " needs a value"
	} else {
		msg = strings.Replace(msg, " for flag -", " for --", 1)
	}
	takes := wrapWords(fs.Name()+" takes "+flagList(fs), 76)
	return fmt.Errorf("%s\n  %s", msg, strings.Join(takes, "\n  "))
}

// flagList names every flag of fs with what its value is.
func flagList(fs *flag.FlagSet) string {
	var out []string
	fs.VisitAll(func(f *flag.Flag) {
		value, _ := flag.UnquoteUsage(f)
		if value != "" {
			value = " " + value
		}
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		out = append(out, dash+f.Name+value)
	})
	return strings.Join(out, ", ")
}
