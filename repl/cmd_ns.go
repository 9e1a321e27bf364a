package repl

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"stepbox/primitives"
	"stepbox/primitives/step"
	"stepbox/viz"
)

func init() {
	register(
		&Command{
			Name: "unshare", Group: "namespaces", Usage: "unshare TYPE…|all [--boottime DUR] [--monotonic DUR]",
			MinArgs: 1, MaxArgs: -1, NeedsBox: true, Recorded: true,
			Summary: "give the box new namespaces: uts ipc net pid mnt cgroup time, or all",
			Kernel:  "unshare(2) moves the calling process into a new namespace of each type; pid and time apply to its children, so `unshare pid` also forks the box's PID 1",
			Example: "unshare uts ipc pid", Man: "unshare(2), namespaces(7)",
			Flags: []Flag{
				{Name: "boottime", Value: "DUR", Help: "with time: shift CLOCK_BOOTTIME (uptime) by DUR, e.g. 24h"},
				{Name: "monotonic", Value: "DUR", Help: "with time: shift CLOCK_MONOTONIC by DUR"},
			},
			Complete: completeUnshare,
			Run:      runUnshare,
			Plan: func(sh *Shell, c *Call) (*step.Step, error) {
				types, opts, _, err := unshareRequest(sh.Current(), c)
				if err != nil {
					return nil, err
				}
				return sh.Current().PlanUnshare(types, opts)
			},
		},
		&Command{
			Name: "hostname", Group: "namespaces", Usage: "hostname NAME", MinArgs: 1, MaxArgs: 1, NeedsBox: true, Recorded: true,
			Summary: "set the box's hostname (needs its own uts namespace)",
			Kernel:  "sethostname(2) changes the name of the calling process's UTS namespace",
			Example: "hostname web", Man: "sethostname(2), uts_namespaces(7)",
			Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanSethostname(c.Args[0]) },
			Run: func(sh *Shell, c *Call) error {
				b := sh.Current()
				st, err := b.Sethostname(c.Args[0])
				sh.printStep(st)
				if err != nil {
					return err
				}
				sh.ok("hostname of box %s is now %s; the host's is unchanged", b.Name, c.Args[0])
				return nil
			},
		},
		&Command{
			Name: "ns", Group: "namespaces", Usage: "ns [NAME]", MaxArgs: 1, NeedsBox: true,
			Summary: "the namespace inode table: host, box process, its PID 1",
			Kernel:  "reads the links in /proc/PID/ns: two processes share a namespace exactly when the inodes match",
			Example: "ns", Man: "namespaces(7)", Complete: completeBoxes,
			Run: func(sh *Shell, c *Call) error {
				b := sh.Current()
				if len(c.Args) == 1 {
					var err error
					if b, err = sh.boxNamed(c.Args[0]); err != nil {
						return err
					}
				}
				return sh.showNamespaces(b)
			},
		},
	)
}

func (sh *Shell) showNamespaces(b *primitives.Box) error {
	snap, err := b.Namespaces()
	if err != nil {
		return err
	}
	fmt.Fprintln(sh.Out, viz.NamespacePanel(snap, sh.Width, sh.Theme))
	return nil
}

func runUnshare(sh *Shell, c *Call) error {
	b := sh.Current()
	types, opts, skipped, err := unshareRequest(b, c)
	if err != nil {
		return err
	}
	st, err := b.Unshare(types, opts)
	sh.printStep(st)
	if err != nil {
		return err
	}
	var done []string
	for _, t := range types {
		done = append(done, t.Name)
	}
	sh.ok("box %s has new %s %s", b.Name, strings.Join(done, ", "), step.Plural(len(done), "namespace"))
	if len(skipped) > 0 {
		sh.say("  skipped: %s", strings.Join(skipped, ", "))
	}
	if ip := b.InitPID(); ip != 0 && containsName(types, "pid") {
		sh.say("  PID %d on the host is PID 1 in the box: commands now start from it", ip)
	}
	var late *primitives.RootlessRefusal
	if containsName(types, "pid") && errors.As(primitives.RefuseRootless("mount proc", b), &late) {
		// Said now, not at the `mount proc` the learner would try next.
		sh.say("%s", viz.Wrap(sh.Theme.Warn.Render("! rootless, box "+b.Name+" can no longer get a /proc:")+" "+late.Why+"; do: "+late.Do, sh.Width-2, "  "))
	}
	if sh.stepPanelsUnseen() {
		return nil
	}
	return sh.showNamespaces(b)
}

// unshareRequest reads `unshare TYPE…|all [--boottime DUR] [--monotonic DUR]`
// for box b: the types to unshare, the clock offsets, and what `all` skipped.
func unshareRequest(b *primitives.Box, c *Call) ([]primitives.NamespaceType, primitives.UnshareOptions, []string, error) {
	var opts primitives.UnshareOptions
	var types []primitives.NamespaceType
	var skipped []string
	for _, a := range c.Args {
		if a == "all" {
			for _, t := range primitives.NamespaceTypes {
				if t.Name == "user" || b.Has(t.Name) {
					if !b.Has(t.Name) {
						skipped = append(skipped, "user (it changes who owns the others: `unshare user` on its own, first)")
					}
					continue
				}
				types = append(types, t)
			}
			continue
		}
		t, err := lookupNamespace(a)
		if err != nil {
			return nil, opts, nil, err
		}
		for _, u := range types {
			if u.Name == t.Name {
				return nil, opts, nil, fmt.Errorf("%s is listed twice", a)
			}
		}
		types = append(types, t)
	}
	if len(types) == 0 {
		return nil, opts, nil, fmt.Errorf("box %s has every namespace it can have already (%s)", b.Name, strings.Join(b.Unshared(), " "))
	}
	for flag, dst := range map[string]*time.Duration{"boottime": &opts.Boottime, "monotonic": &opts.Monotonic} {
		v, ok := c.Flags[flag]
		if !ok {
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, opts, nil, fmt.Errorf("--%s %q: not a duration: use a Go duration such as 90s, 30m or 24h", flag, v)
		}
		hasTime := false
		for _, t := range types {
			hasTime = hasTime || t.Name == "time"
		}
		if !hasTime {
			return nil, opts, nil, fmt.Errorf("--%s applies only with the time type: unshare time --%s %s", flag, flag, v)
		}
		*dst = d
	}
	return types, opts, skipped, nil
}

func containsName(types []primitives.NamespaceType, name string) bool {
	for _, t := range types {
		if t.Name == name {
			return true
		}
	}
	return false
}

func completeUnshare(sh *Shell, args []string) []Suggestion {
	b := sh.Current()
	given := map[string]bool{}
	for _, a := range args {
		given[a] = true
	}
	var out []Suggestion
	for _, t := range primitives.NamespaceTypes {
		if given[t.Name] || (b != nil && b.Has(t.Name)) {
			continue
		}
		out = append(out, Suggestion{Text: t.Name, Description: "its own " + strings.TrimPrefix(t.Isolate, "the ")})
	}
	if len(out) > 1 && !given["all"] {
		out = append(out, Suggestion{Text: "all", Description: "every type not unshared yet but user"})
	}
	return out
}
