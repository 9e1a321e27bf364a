package repl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
)

// globalFlags are the flags every subcommand takes, before its name or
// after it, as a lecturer types them: `stepbox demo 2 --theme contrast`.
type globalFlags struct {
	stateDir string
	plain    bool
	theme    themeName
	record   string
	web      webAddr
}

// webAddr is --web's value: `--web` alone serves the live view on
// loopback at a port the kernel picks, `--web ADDR` or `--web=ADDR` on
// ADDR. It is a switch to the flag package, so `demo 2 --web --auto 1`
// does not read `--auto` as an address; webArgs joins a following
// HOST:PORT to it first.
type webAddr string

func (w *webAddr) String() string   { return string(*w) }
func (w *webAddr) IsBoolFlag() bool { return true }

func (w *webAddr) Set(v string) error {
	switch v {
	case "true":
		*w = webDefaultAddr
	case "false":
		*w = ""
	default:
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("use HOST:PORT, as 127.0.0.1:8080 (%v)", err)
		}
		*w = webAddr(v)
	}
	return nil
}

// webArgs writes `--web HOST:PORT` as `--web=HOST:PORT`, the form the
// flag package gives a switch its value in.
func webArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if (a == "--web" || a == "-web") && i+1 < len(args) {
			if _, port, err := net.SplitHostPort(args[i+1]); err == nil && port != "" {
				out = append(out, a+"="+args[i+1])
				i++
				continue
			}
		}
		if a == "--" {
			return append(out, args[i:]...)
		}
		out = append(out, a)
	}
	return out
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
	fs.StringVar(&g.stateDir, "state-dir", g.stateDir, "keep state under `DIR` (default /run/stepbox and /var/lib/stepbox; also $STEPBOX_STATE_DIR)")
	fs.BoolVar(&g.plain, "plain", g.plain, "no colours or escape codes (also NO_COLOR=1, and whenever output is not a terminal)")
	fs.Var(&g.theme, "theme", "colour theme `NAME`: default, or contrast for projectors")
	fs.StringVar(&g.record, "record", g.record, "write an asciicast v2 recording of the session or demo to `FILE`")
	fs.Var(&g.web, "web", "serve the live view, a read-only page for a projector (loopback, or `ADDR` as 127.0.0.1:8080)")
	fs.Func("cgroup-parent", "put stepbox's cgroups under the cgroup `PATH` (such as /mine) instead of the session's own cgroup; PATH must exist in every hierarchy (stepbox does not create it), outside every session's stepbox-* cgroup", func(v string) error {
		if err := cgroups.CheckParentPath(v); err != nil {
			return err
		}
		primitives.CgroupParentOverride = v
		return nil
	})
	return fs
}

func (g *globalFlags) dirs() (primitives.Dirs, error) { return primitives.DefaultDirs(g.stateDir) }

func (g *globalFlags) shellOptions() ShellOptions {
	progress := g.stateDir
	if progress == "" {
		progress = os.Getenv("STEPBOX_STATE_DIR")
	}
	return ShellOptions{Plain: g.plain, Theme: string(g.theme), Record: g.record, Web: string(g.web), Progress: progress}
}

// parseFlags parses args with fs, flags anywhere among the other words
// (which it returns in order); `--` ends the flags.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var words []string
	args = webArgs(args)
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
