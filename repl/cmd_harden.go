package repl

import (
	"context"
	"fmt"

	"stepbox/primitives"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
	"stepbox/viz"
)

func init() {
	register(&Command{
		Name: "probe", Group: "security", Usage: "probe [NAME…]", MaxArgs: -1, NeedsBox: true,
		Summary: "try each known escape from inside the box and report it open or closed (unknown where the box put a file of its own in the way, or where a process of the box traces the probe); the host is never changed",
		Kernel: "runs stepbox __probe inside the box as its next command (execveat(2) of stepbox through a read-only overlay, or of a sealed memfd copy): mknod(2) and a read-only open and read of every host block device and of /dev/kmsg, " +
			"/proc/PID/root and /proc/PID/cwd/.. (a cwd kept on the host through pivot_root), access(2) W_OK on release_agent, /proc/sys, /sys and the parent cgroup's cgroup.procs, open_by_handle_at(2), " +
			"finit_module(-1), syslog(2), /proc/kallsyms, /proc/1/mem opened for reading; mounts only in a mount namespace of its own; " +
			"older_processes: the session reads /proc/PID/task/TID/status of every thread of the box's processes and their /proc/PID/ns/user from the host; after pivot_root it names every process started before it (what one keeps cannot all be seen) and statx(2)s the mount of each thread's cwd, root and open fds and of the files it maps (/proc/PID/map_files), and names an fd of a namespace not the box's; after chroot, a process whose root is not the box's. " +
			"A tracer could make the probe's syscalls fail and a hole look closed: the probe makes itself non-dumpable (prctl(2) PR_SET_DUMPABLE) first thing, and while it runs the session reads its TracerPid (/proc/PID/status) from the host every few milliseconds; " +
			"if it saw a tracer (ptrace(2)), or never once saw the probe running, it reports every escape tried inside the box unknown, naming the tracer it saw",
		Example: "probe disk release_agent", Man: "capabilities(7), cgroups(7), open_by_handle_at(2), finit_module(2), syslog(2), ptrace(2)",
		Complete: func(sh *Shell, args []string) []Suggestion {
			var out []Suggestion
			for _, n := range primitives.ProbeNames() {
				out = append(out, Suggestion{Text: n})
			}
			return out
		},
		Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanProbe(c.Args) },
		Run: func(sh *Shell, c *Call) error {
			b := sh.Current()
			rs, st, err := b.Probe(sh.interrupt, c.Args)
			sh.printStep(st)
			if err != nil {
				return err
			}
			fmt.Fprintln(sh.Out, viz.ProbePanel(b.Name, rs, sh.Width, sh.Theme))
			return nil
		},
	})
}

// mountMaskCommand is `mount mask`, shown as the box's mount table
// before and after.
func mountMaskCommand() *Command {
	return &Command{
		Name: "mask", Usage: "mount mask", NeedsBox: true, Recorded: true,
		Summary: "Docker's masked paths (/proc/kcore, /proc/keys, /sys/firmware…) and read-only paths (/proc/sys, /proc/sysrq-trigger…)",
		Kernel: "a masked file: mount(\"/dev/null\", PATH, MS_BIND); a masked directory: an empty tmpfs with MS_RDONLY; " +
			"a read-only path: mount(PATH, PATH, MS_BIND|MS_REC), then mount(…, MS_RDONLY|MS_REMOUNT|MS_BIND)",
		Example: "mount mask", Man: "mount(2), proc(5)",
		Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanMountMask() },
		Run: func(sh *Shell, c *Call) error {
			b := sh.Current()
			return sh.mountsBeforeAfter(b, func() (*step.Step, error) { return b.MountMask() }, func() {
				sh.ok("masked %d paths and made %d read-only in box %s", len(rootfs.MaskedPaths), len(rootfs.ReadonlyPaths), b.Name)
			})
		},
	}
}

// mountsBeforeAfter runs a mount step and shows what it changed in the
// box's mount table.
func (sh *Shell) mountsBeforeAfter(b *primitives.Box, do func() (*step.Step, error), ok func()) error {
	// The step runs only once the table before it is read whole: a cut
	// one would show mounts it did not make as its own.
	ctx, cancel := context.WithTimeout(sh.interrupt, rootfs.StepReadTime)
	defer cancel()
	before, _, err := b.Mounts(ctx)
	if err != nil {
		return fmt.Errorf("the mount table before the step: %w", err)
	}
	st, err := do()
	sh.printStep(st)
	if err != nil {
		return err
	}
	ok()
	// Done, the step stands: a cut read after it shows what it read.
	actx, acancel := sh.mountsPanelRead()
	defer acancel()
	d, err := b.MountDiffFrom(actx, before)
	if err != nil && d.Cut == "" {
		return err
	}
	fmt.Fprintln(sh.Out, viz.MountStepPanel(d, sh.Width, sh.Theme))
	return nil
}

// devicesCommand is `cgroup devices [show|docker|allow RULE|deny RULE]`.
func devicesCommand() *Command {
	show := &Command{
		Name: "show", Usage: "cgroup devices [show]", NeedsBox: true,
		Summary: "the box's device rules as the kernel has them",
		Kernel:  "v1: reads devices.list; v2: bpf(BPF_PROG_QUERY) for the device programs attached to the box's cgroup",
		Example: "cgroup devices show", Man: "cgroups(7), bpf(2)",
		Run: func(sh *Shell, c *Call) error {
			b := sh.Current()
			d, err := b.CgroupDeviceRules()
			if err != nil {
				return err
			}
			fmt.Fprintln(sh.Out, viz.DevicesPanel(b.Name, d, sh.Width, sh.Theme))
			return nil
		},
	}
	change := func(verb, usage, summary, example string, min, maxArgs int) *Command {
		return &Command{
			Name: verb, Usage: usage, MinArgs: min, MaxArgs: maxArgs, NeedsBox: true, Recorded: true,
			Summary: summary,
			Kernel:  "v1: write(2) of each rule to devices.deny or devices.allow; v2: bpf(BPF_PROG_LOAD) of a BPF_PROG_TYPE_CGROUP_DEVICE program built from the rules, bpf(BPF_PROG_ATTACH) to the box's cgroup, bpf(BPF_PROG_DETACH) of the one before",
			Example: example, Man: "cgroups(7), bpf(2)",
			Plan: func(sh *Shell, c *Call) (*step.Step, error) {
				return sh.Current().PlanCgroupDevices(verb, c.Args)
			},
			Run: func(sh *Shell, c *Call) error {
				b := sh.Current()
				st, err := b.CgroupDevices(verb, c.Args)
				sh.printStep(st)
				if err != nil {
					return err
				}
				sh.ok("%s", st.Summary)
				return show.Run(sh, c)
			},
		}
	}
	return &Command{
		Name: "devices", Usage: "cgroup devices [show|docker|allow RULE|deny RULE]", NeedsBox: true,
		Summary: "which device nodes the box may open and make: Docker's list, or rules in the v1 syntax (`c 1:3 rwm`)",
		Kernel:  "the devices controller (v1 devices.allow/devices.deny) or an eBPF device program on the cgroup (v2)",
		Example: "cgroup devices docker", Man: "cgroups(7), bpf(2)",
		Run: show.Run,
		Sub: []*Command{
			show,
			change("docker", "cgroup devices docker", "Docker's default: deny every device, then allow null, zero, full, tty, random, urandom, pts, ptmx, tun and mknod of any", "cgroup devices docker", 0, 0),
			change("allow", "cgroup devices allow TYPE MAJOR:MINOR ACCESS", "allow a device: `c 1:3 rwm`, `b *:* m`, or `a` for all", "cgroup devices allow c 1:3 rwm", 1, 3),
			change("deny", "cgroup devices deny TYPE MAJOR:MINOR ACCESS", "deny a device: `c 1:3 w`, `b *:* rwm`, or `a` for all", "cgroup devices deny b *:* rwm", 1, 3),
		},
	}
}
