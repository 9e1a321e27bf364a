package repl

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"stepbox/primitives"
	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
	"stepbox/viz"
)

func init() {
	show := &Command{
		Name: "show", Usage: "cgroup [show]", NeedsBox: true,
		Summary: "the cgroup panel: stepbox's tree, limits, live usage, where the box sits",
		Kernel:  "reads the control files (memory.current, pids.current, cpu.stat…) and /proc/PID/cgroup",
		Example: "cgroup show", Man: "cgroups(7)",
		Run: func(sh *Shell, c *Call) error { return sh.showCgroup() },
	}
	register(&Command{
		Name: "cgroup", Group: "cgroups", Usage: "cgroup new|set|limit|attach|show",
		Summary: "make the box's cgroup, set limits, attach its processes, watch usage",
		Kernel:  "cgroups are directories of control files: mkdir makes one, writing a PID to cgroup.procs moves a process in",
		Example: "cgroup limit memory 64M", Man: "cgroups(7)", NeedsBox: true,
		Run: show.Run,
		Sub: []*Command{
			{
				Name: "new", Usage: "cgroup new", NeedsBox: true, Recorded: true,
				Summary: "make the box's cgroup (named after the box and a short id)",
				Kernel:  "mkdir(2) in each cgroup hierarchy under stepbox's parent; on cgroup v2, controllers are enabled on the way down through cgroup.subtree_control",
				Example: "cgroup new", Man: "cgroups(7), mkdir(2)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanCgroupNew() },
				Run: func(sh *Shell, c *Call) error {
					b := sh.Current()
					st, err := b.CgroupNew()
					sh.printStep(st)
					if err != nil {
						return err
					}
					g := b.Cgroup()
					sh.ok("box %s has cgroup %s (id %s); find it with: !find /sys/fs/cgroup -name '*%s*'", b.Name, g.Name, g.ID, g.ID)
					return sh.showCgroupStep(viz.CgroupStep{})
				},
			},
			{
				Name: "set", Usage: "cgroup set FILE VALUE", MinArgs: 2, MaxArgs: 2, NeedsBox: true, Recorded: true,
				Summary: "write VALUE to a control file of the box's cgroup, as `echo VALUE > FILE` would",
				Kernel:  "write(2) to the control file: the kernel parses the value and applies it at once",
				Example: "cgroup set pids.max 20", Man: "cgroups(7)",
				Complete: completeControlFiles,
				Plan: func(sh *Shell, c *Call) (*step.Step, error) {
					return sh.Current().PlanCgroupSet(c.Args[0], c.Args[1])
				},
				Run: func(sh *Shell, c *Call) error {
					b := sh.Current()
					st, err := b.CgroupSet(c.Args[0], c.Args[1])
					sh.printStep(st)
					if err != nil {
						return err
					}
					sh.ok("%s = %s", c.Args[0], c.Args[1])
					resource, _, _ := strings.Cut(c.Args[0], ".")
					return sh.showCgroupStep(viz.CgroupStep{Resource: resource})
				},
			},
			{
				Name: "limit", Usage: "cgroup limit memory|pids|cpu VALUE", MinArgs: 2, MaxArgs: 2, NeedsBox: true, Recorded: true,
				Summary: "set a limit: memory 64M, pids 20, cpu 50% (translated for cgroup v1 or v2)",
				Kernel:  "writes memory.max or memory.limit_in_bytes, pids.max, cpu.max or cpu.cfs_quota_us",
				Example: "cgroup limit pids 20", Man: "cgroups(7)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) {
					if err := closedWord("cgroup limit", "controller", c.Args[0], cgroups.LimitKinds); err != nil {
						return nil, err
					}
					return sh.Current().PlanCgroupLimit(c.Args[0], c.Args[1])
				},
				Complete: func(sh *Shell, args []string) []Suggestion {
					if len(args) > 1 {
						return nil
					}
					return []Suggestion{
						{"memory", "bytes: 32M, 1G or max; the OOM killer ends a box that needs more"},
						{"pids", "how many processes and threads: 20 or max; fork fails past it"},
						{"cpu", "share of one CPU: 20%, 150% or max; the box is throttled past it"},
					}
				},
				Run: func(sh *Shell, c *Call) error {
					if err := closedWord("cgroup limit", "controller", c.Args[0], cgroups.LimitKinds); err != nil {
						return err
					}
					b := sh.Current()
					set, st, err := b.CgroupLimit(c.Args[0], c.Args[1])
					sh.printStep(st)
					if err != nil {
						return err
					}
					var files []string
					for _, s := range set {
						files = append(files, fmt.Sprintf("%s = %s", s.File, s.Value))
					}
					sh.ok("%s limit %s written: %s", c.Args[0], c.Args[1], strings.Join(files, ", "))
					if sh.stepPanelsUnseen() {
						return nil
					}
					// One read of the tree serves the warning and the panel.
					snap, err := sh.cgroupSnapshot()
					if err != nil {
						return err
					}
					sh.warnOverLimit(b, c.Args[0], snap)
					fmt.Fprintln(sh.Out, viz.CgroupStepPanel(snap, viz.CgroupStep{Resource: c.Args[0]}, sh.Width, sh.Theme))
					return nil
				},
			},
			{
				Name: "attach", Usage: "cgroup attach", NeedsBox: true, Recorded: true,
				Summary: "move the box's processes into its cgroup; their children start inside",
				Kernel:  "write(2) of each PID to cgroup.procs (v1 also lists each thread in tasks)",
				Example: "cgroup attach", Man: "cgroups(7)",
				Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanCgroupAttach() },
				Run: func(sh *Shell, c *Call) error {
					b := sh.Current()
					pids, st, err := b.CgroupAttach()
					sh.printStep(st)
					if err != nil {
						return err
					}
					sh.ok("moved %s %s into cgroup %s", step.Plural(len(pids), "PID"), joinInts(pids), b.Cgroup().Name)
					return sh.showCgroupStep(viz.CgroupStep{Attached: true})
				},
			},
			devicesCommand(),
			show,
		},
	})
}

// showCgroup draws the whole cgroup panel: `cgroup show`.
func (sh *Shell) showCgroup() error {
	snap, err := sh.cgroupSnapshot()
	if err != nil {
		return err
	}
	fmt.Fprintln(sh.Out, viz.CgroupPanel(snap, sh.Width, sh.Theme))
	return nil
}

// showCgroupStep draws what a cgroup step changed, under it.
func (sh *Shell) showCgroupStep(what viz.CgroupStep) error {
	if sh.stepPanelsUnseen() {
		return nil
	}
	snap, err := sh.cgroupSnapshot()
	if err != nil {
		return err
	}
	fmt.Fprintln(sh.Out, viz.CgroupStepPanel(snap, what, sh.Width, sh.Theme))
	return nil
}

func (sh *Shell) cgroupSnapshot() (cgroups.Snapshot, error) {
	b := sh.Current()
	if b.Cgroup() == nil {
		return cgroups.Snapshot{}, primitives.ErrNoCgroup()
	}
	snap, err := b.CgroupSnapshot(sh.lastCgroup)
	if err != nil {
		return snap, err
	}
	sh.lastCgroup = &snap
	return snap, nil
}

// warnOverLimit says, from snap, when box b's cgroup already uses more of resource
// than the limit just written: the kernel takes nothing away from what is
// there (pids) or reclaims and may OOM-kill (memory), which a learner
// would not guess from a limit that was accepted.
func (sh *Shell) warnOverLimit(b *primitives.Box, resource string, snap cgroups.Snapshot) {
	g := b.Cgroup()
	if g == nil {
		return
	}
	for _, n := range snap.Parent.Children {
		if n.Name != g.Name {
			continue
		}
		var msg string
		switch st := n.Stats; {
		case resource == "pids" && st.Pids != nil && st.Pids.Max >= 0 && st.Pids.Max != cgroups.Unlimited && st.Pids.Current > st.Pids.Max:
			msg = fmt.Sprintf("! box %s already runs %d tasks, more than %d: they keep running, and every fork fails until fewer than %d are left", b.Name, st.Pids.Current, st.Pids.Max, st.Pids.Max)
		case resource == "memory" && st.Memory != nil && st.Memory.Max != cgroups.Unlimited && st.Memory.Current > st.Memory.Max:
			msg = fmt.Sprintf("! box %s already uses %s, more than %s: the kernel reclaims what it can, then the OOM killer ends a process of the box", b.Name, viz.Bytes(st.Memory.Current), viz.Bytes(st.Memory.Max))
		}
		if msg != "" {
			sh.say("%s", sh.Theme.Warn.Render(msg))
		}
	}
}

func joinInts(v []int) string {
	var s []string
	for _, i := range v {
		s = append(s, fmt.Sprint(i))
	}
	return strings.Join(s, " ")
}

// completeControlFiles offers the control files that exist in the box's
// cgroup, so the names match the host's cgroup version.
func completeControlFiles(sh *Shell, args []string) []Suggestion {
	b := sh.Current()
	if b == nil || b.Cgroup() == nil || len(args) > 1 {
		return nil
	}
	seen := map[string]bool{}
	var out []Suggestion
	for _, d := range b.Cgroup().Dirs {
		ents, err := os.ReadDir(d.Path)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if e.IsDir() || seen[e.Name()] {
				continue
			}
			if info, err := e.Info(); err != nil || info.Mode().Perm()&0o200 == 0 {
				continue // read-only: nothing to set
			}
			seen[e.Name()] = true
			desc := "a control file of the box's cgroup (v2)"
			if d.Hierarchy != "" {
				desc = "in the " + d.Hierarchy + " hierarchy (v1)"
			}
			out = append(out, Suggestion{Text: e.Name(), Description: desc})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Text < out[j].Text })
	return out
}
