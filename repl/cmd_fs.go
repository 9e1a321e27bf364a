package repl

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"stepbox/primitives"
	"stepbox/primitives/layers"
	"stepbox/primitives/rootfs"
	"stepbox/primitives/step"
	"stepbox/viz"
)

func init() {
	register(
		&Command{
			Name: "mount", Group: "filesystem", Usage: "mount overlay|proc|sys|cgroup|dev|tmpfs|bind|mask …", NeedsBox: true,
			Summary: "mount an overlay of layers, or proc, sys, dev, a tmpfs or a volume, in the box's mount namespace",
			Kernel:  "mount(2) in the box's own mount namespace: no other process sees the mount, and it goes with the namespace",
			Example: "mount overlay base fileA", Man: "mount(2), mount_namespaces(7)",
			Sub: []*Command{
				{
					Name: "overlay", Usage: "mount overlay IMAGE|LAYER…", MinArgs: 1, MaxArgs: -1, NeedsBox: true, Recorded: true,
					Summary: "a union of read-only layers (bottom first) and a fresh writable upper dir",
					Kernel:  "mount(2) of type overlay with lowerdir= (top layer first), upperdir= and workdir=: reads fall through the layers, writes go to the upper dir",
					Example: "mount overlay base fileA fileB", Man: "mount(2), overlayfs (Documentation/filesystems/overlayfs.rst)",
					Complete: completeLayerList,
					Run:      runMountOverlay,
					Plan: func(sh *Shell, c *Call) (*step.Step, error) {
						stack, err := sh.overlayLayers(c.Args)
						if err != nil {
							return nil, err
						}
						return sh.Current().PlanMountOverlay(stack)
					},
				},
				mountKind("proc", "mount proc [PATH]", "/proc", "the proc filesystem: the box's own processes once it has a PID namespace", "mount(2) of type proc; what it shows depends on the PID namespace of the process that mounts it"),
				mountKind("sys", "mount sys [PATH]", "/sys", "sysfs, read-only, as container runtimes mount it", "mount(2) of type sysfs with MS_RDONLY"),
				mountKind("cgroup", "mount cgroup [PATH]", "/sys/fs/cgroup", "the cgroup filesystem, read-only, as Docker mounts it", "mount(2) of cgroup2 (or of each v1 hierarchy in a tmpfs) with MS_RDONLY: the box reads its cgroups and writes none"),
				mountKind("dev", "mount dev [PATH]", "/dev", "a minimal /dev: null zero random urandom tty, and pts", "a tmpfs, mknod(2) of each device (in a user namespace, which may not, a bind of the host's node), and a new devpts instance"),
				mountKind("tmpfs", "mount tmpfs PATH", "", "a memory-backed filesystem at PATH, 64M at most", "mount(2) of type tmpfs, with size=64m and nr_inodes=16384: without a size a tmpfs may take half the host's memory, and without nr_inodes its empty files as much in kernel memory"),
				{
					Name: "bind", Usage: "mount bind HOSTDIR PATH[:ro]", MinArgs: 2, MaxArgs: 2, NeedsBox: true, Recorded: true,
					Summary: "a volume: a host directory seen at PATH inside the box (read-only with :ro)",
					Kernel:  "mount(2) with MS_BIND, then for :ro mount_setattr(2) with AT_RECURSIVE and MOUNT_ATTR_RDONLY (MS_REMOUNT|MS_BIND|MS_RDONLY where the kernel lacks it)",
					Example: "mount bind /srv/data /data:ro", Man: "mount(2)",
					Complete: completePath,
					Run: func(sh *Shell, c *Call) error {
						target, ro := strings.CutSuffix(c.Args[1], ":ro")
						return sh.mountStep("bind", c.Args[0], target, ro)
					},
					Plan: func(sh *Shell, c *Call) (*step.Step, error) {
						target, ro := strings.CutSuffix(c.Args[1], ":ro")
						return sh.Current().PlanMount("bind", c.Args[0], target, ro)
					},
				},
				mountMaskCommand(),
			},
		},
		&Command{
			Name: "pivot_root", Group: "filesystem", Usage: "pivot_root", NeedsBox: true, Recorded: true,
			Summary: "make the overlay the box's / and detach the host's: what container runtimes do",
			Kernel:  "make / private, bind the new root onto itself with the mounts inside it, pivot_root(\".\", \".\"), umount2(\".\", MNT_DETACH), mount /proc when the box has its own PID namespace",
			Example: "pivot_root", Man: "pivot_root(2), mount_namespaces(7)",
			Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanPivotRoot() },
			Run: func(sh *Shell, c *Call) error {
				b := sh.Current()
				st, err := b.PivotRoot()
				sh.printCalls(st)
				sh.printStep(st)
				if err != nil {
					return err
				}
				sh.pivotDone(b)
				return nil
			},
		},
		&Command{
			Name: "chroot", Group: "filesystem", Usage: "chroot", NeedsBox: true, Recorded: true,
			Summary: "change the box's root directory to the overlay: the weaker alternative to pivot_root",
			Kernel:  "chroot(2) changes only where path lookups start; the host's root stays mounted and a process with CAP_SYS_CHROOT can climb back out",
			Example: "chroot", Man: "chroot(2)",
			Plan: func(sh *Shell, c *Call) (*step.Step, error) { return sh.Current().PlanChroot() },
			Run: func(sh *Shell, c *Call) error {
				b := sh.Current()
				st, err := b.Chroot()
				sh.printStep(st)
				if err != nil {
					return err
				}
				sh.ok("the box's root directory is the overlay now; try `breakout`")
				return nil
			},
		},
		&Command{
			Name: "breakout", Group: "filesystem", Usage: "breakout", NeedsBox: true,
			Summary: "try the classic escape: chroot into a subdirectory, then climb '..' past the root",
			Kernel:  "mkdir, chroot(\"x\") leaves the cwd outside the root, so chdir(\"..\") is no longer stopped there; after pivot_root the old root is detached and there is nothing above",
			Example: "breakout", Man: "chroot(2), pivot_root(2)",
			Run: func(sh *Shell, c *Call) error {
				b := sh.Current()
				esc, st, err := b.Breakout()
				sh.printStep(st)
				if err != nil {
					return err
				}
				listing := viz.Escape(strings.Join(esc.Root, " ")) // names the box may have made
				if esc.Escaped {
					sh.say("%s climbed %s of '..' and reached the host's /: %s", sh.Theme.Bad.Render("escaped:"), step.Count(esc.Hops, "level"), listing)
					sh.say("  a chroot only moves where lookups start; pivot_root detaches the host's root so there is nothing above")
				} else if esc.Hops == 0 {
					sh.say("%s '..' of the box's / is that / itself: nothing is above it to climb to: %s", sh.Theme.Good.Render("contained:"), listing)
				} else {
					sh.say("%s after %s of '..' the box is still in its own /: %s", sh.Theme.Good.Render("contained:"), step.Count(esc.Hops, "level"), listing)
				}
				return nil
			},
		},
		&Command{
			Name: "stack", Group: "filesystem", Usage: "stack [--files]", NeedsBox: true,
			Summary: "the layer stack: lowers, upper, merged; the upper dir's + created, ~ copied up, - deleted",
			Kernel:  "reads the layer and upper dirs on the host: overlayfs keeps every change of the box in the upper dir (a whiteout for a deletion)",
			Example: "stack --files", Man: "overlayfs",
			Flags: []Flag{{Name: "files", Help: "also list every path of the merged view and the layer it comes from"}},
			Run:   func(sh *Shell, c *Call) error { return sh.showStack(c.Has("files")) },
		},
		&Command{
			Name: "mounts", Group: "filesystem", Usage: "mounts [--diff]", NeedsBox: true,
			Summary: "the box's mount table, or how it differs from the host's",
			Kernel:  "reads /proc/PID/mountinfo of the box's process: each mount namespace has its own table",
			Example: "mounts --diff", Man: "proc(5), mount_namespaces(7)",
			Flags: []Flag{{Name: "diff", Help: "only what differs from the host's mount table"}},
			Run: func(sh *Shell, c *Call) error {
				ctx, cancel := sh.mountsPanelRead()
				defer cancel()
				if c.Has("diff") {
					d, err := sh.Current().MountDiff(ctx)
					if err != nil && d.Cut == "" {
						return err
					}
					fmt.Fprintln(sh.Out, viz.MountDiffPanel(d, sh.Width, sh.Theme))
					return nil
				}
				box, _, err := sh.Current().Mounts(ctx)
				if err != nil && box.Cut == "" {
					return err
				}
				fmt.Fprintln(sh.Out, viz.MountsPanel(box, sh.Width, sh.Theme))
				return nil
			},
		},
	)
}

// reachShown is how many of the mounts that still show host files
// pivot_root's success line names.
const reachShown = 5

// pivotDone is pivot_root's success line: the host's root is detached,
// but a mount made in the new root before the pivot came along with it
// (Box.HostReach), and a bind of a host directory there keeps it in the
// box's reach (ut32 F7); and a process of the box started before the
// pivot keeps what it had (Box.HostHolds): a cwd, root or open file
// elsewhere on the host (ut33 F6), or what no look from outside sees, a
// file it mapped, an fd queued on a socket (ut34 F1). The line calls the
// host unreachable only when neither is there, and otherwise names them.
// Their mount points, sources and command names are the box's to
// choose: escaped, each cut, and at most reachShown of each.
func (sh *Shell) pivotDone(b *primitives.Box) {
	list, n, err := b.HostReach()
	var holders []primitives.HostHolder
	var nh, looked int
	var cut bool
	if err == nil {
		holders, nh, looked, cut, err = b.HostHolds()
	}
	// seen: every holder listed shows where it holds the host; else some
	// only started before the pivot, and the line says they may.
	seen := !slices.ContainsFunc(holders, func(h primitives.HostHolder) bool { return h.N == 0 })
	procs := fmt.Sprintf("%s of the box still %s the host's filesystem", step.Count(nh, "process"), map[bool]string{true: "holds", false: "hold"}[nh == 1])
	if !seen {
		procs = fmt.Sprintf("%s of the box started before it still %s and may keep a way back to the host", step.Count(nh, "process"), map[bool]string{true: "runs", false: "run"}[nh == 1])
	}
	switch {
	case err != nil:
		sh.ok("the overlay is the box's / now and the host's root is detached; whether a mount or a process of the box still reaches host files is not known: %v", err)
		sh.say("  `mounts` lists the box's mount table, `ps` its processes")
		return
	case n == 0 && nh == 0:
		sh.ok("the overlay is the box's / now; the host's root is detached and unreachable from inside")
		return
	case n == 0:
		sh.ok("the overlay is the box's / now and the host's root is detached, but %s:", procs)
	default:
		verb := map[bool]string{true: "shows", false: "show"}[n == 1]
		sh.ok("the overlay is the box's / now and the host's root is detached, but %s inside still %s host files (pivot_root carries along what was mounted in the new root):", step.Count(n, "mount"), verb)
	}
	for _, m := range list[:min(len(list), reachShown)] {
		point := viz.Escape(step.Cut(m.Point))
		if v := m.Volume; v != nil {
			ro := ""
			if v.ReadOnly {
				ro = ", read-only"
			}
			// The learner typed the source, as `mount bind` echoed it.
			sh.say("  %s: the host's %s, a volume of your `mount bind`%s: the box reaches it, as a volume is meant to", point, viz.Escape(v.Source), ro)
			continue
		}
		// As the `!` check names such a mount (Box.MadeMount), each of
		// its box-chosen parts cut.
		a := "a"
		if strings.IndexAny(m.Mount.FSType, "aeiou") == 0 {
			a = "an" // an overlay
		}
		what := fmt.Sprintf("%s %s mount of %s", a, step.Cut(m.Mount.FSType), step.Cut(m.Mount.Source))
		if m.Mount.Root != "/" {
			what += "[" + step.Cut(m.Mount.Root) + "]"
		}
		umount := "`exec umount` with its whole path"
		if q := step.ShellQuote(m.Point); len(q) <= step.CutLen {
			umount = "`exec umount " + step.EscapeControls(q) + "`"
		}
		sh.say("  %s: %s that no step of stepbox's made: the box mounted it before pivot_root, and %s; %s detaches it%s",
			point, viz.Escape(what), reachWhy(m, b.Dir), umount, reachInstead[m.Reach])
	}
	if n > reachShown {
		sh.say("  and %d more: `mounts` lists them", n-reachShown)
	}
	if nh == 0 {
		return
	}
	if n > 0 {
		sh.say("  and %s:", procs)
	}
	if seen {
		sh.say("  pivot_root(2) moves only the processes whose root or cwd was the old root; these started before it and kept a place on the host, from which /proc/PID/cwd/.. (root, fd/N) leads to the host's /, and map_files/… to a file it mapped:")
	} else {
		sh.say("  pivot_root(2) moves only the processes whose root or cwd was the old root; what one started before it keeps of the host (a file it mapped, an fd queued on a socket, a thread's own root or fds) cannot all be seen from outside, so each is named while it runs:")
	}
	for _, h := range holders[:min(len(holders), reachShown)] {
		holds := "nothing seen; it started before pivot_root"
		if h.N > 0 {
			holds = strings.Join(h.Holds, ", ")
			if h.N > len(h.Holds) {
				holds += fmt.Sprintf(" and %d more", h.N-len(h.Holds))
			}
			holds += " on the host's filesystem"
		}
		end := fmt.Sprintf("`exec kill %d` ends it; start it again after pivot_root", h.BoxPID)
		if h.Role != "" {
			end = "stepbox's executor (" + h.Role + "): `rm` the box and build it again"
		}
		sh.say("  PID %d (host %d) %s: %s; %s", h.BoxPID, h.PID, viz.Escape(step.Cut(h.Comm)), viz.Escape(holds), end)
	}
	if nh > reachShown {
		sh.say("  and %d more: `ps` lists the box's processes", nh-reachShown)
	}
	if cut {
		sh.say("  (looked at the first %d of the box's processes only)", looked)
	}
}

// reachWhy says how a mount the box made reaches the host's files, as
// Box.HostReach judged it.
func reachWhy(m primitives.HostMount, boxDir string) string {
	switch m.Reach {
	case primitives.ReachHostProc:
		return "it is a proc of the host's PID namespace: the host's processes are listed there, and their /N/root and /N/cwd lead to the host's /"
	case primitives.ReachOtherProc:
		return "it is a proc of a PID namespace that is not the box's: its processes are not the box's, and their /N/root and /N/cwd may lead to the host's /"
	case primitives.ReachOverlay:
		// Named from $BOX_DIR, as the learner's `!` commands name it.
		dir := m.Dir
		if r, ok := strings.CutPrefix(dir, boxDir+"/"); ok {
			dir = "$BOX_DIR/" + r
		}
		dir = viz.Escape(step.Cut(dir))
		if m.InTree {
			return fmt.Sprintf("it is an overlay of %s, which is no directory of the box's own now (a symlink, or another mount, on the way: the mount followed it when it was made, maybe to a host dir): through it the box may read and write the host's files", dir)
		}
		return fmt.Sprintf("it is an overlay of %s, outside the box's tree ($BOX_DIR/overlay): through it the box reads that host dir, and writes its upper dir", dir)
	case primitives.ReachUnknown:
		return "stepbox cannot tell that it shows only the box's own files (a tmpfs, devpts or mqueue, a proc of the box's PID namespace, a bind or overlay of the box's own dirs), so it may reach the host's"
	}
	return "through it reaches the host's files"
}

// reachInstead is what to do instead, where a mount of its kind is one a
// box needs.
var reachInstead = map[primitives.Reach]string{
	primitives.ReachHostProc:  "; a proc of the box's own is one mounted after `unshare pid`, as pivot_root mounts /proc",
	primitives.ReachOtherProc: "; a proc of the box's own is one mounted after `unshare pid`, as pivot_root mounts /proc",
}

// mountsPanelRead bounds a panel's read of a box's mount table: the
// kernel may take minutes to list a deep stack of mounts on one point,
// so the panel shows what it read by rootfs.PanelReadTime, or by Ctrl-C,
// and says where it stopped (the table's Cut).
func (sh *Shell) mountsPanelRead() (context.Context, context.CancelFunc) {
	return context.WithTimeout(sh.interrupt, rootfs.PanelReadTime)
}

func mountKind(kind, usage, defaultTarget, summary, kernel string) *Command {
	min := 0
	if defaultTarget == "" {
		min = 1
	}
	target := func(c *Call) string {
		if len(c.Args) == 1 {
			return c.Args[0]
		}
		return defaultTarget
	}
	return &Command{
		Name: kind, Usage: usage, MinArgs: min, MaxArgs: 1, NeedsBox: true, Recorded: true,
		Summary: summary, Kernel: kernel, Example: strings.TrimSpace("mount " + kind + " " + map[bool]string{true: "/tmp"}[min == 1]), Man: "mount(2)",
		Run: func(sh *Shell, c *Call) error {
			return sh.mountStep(kind, "", target(c), false)
		},
		Plan: func(sh *Shell, c *Call) (*step.Step, error) {
			return sh.Current().PlanMount(kind, "", target(c), false)
		},
	}
}

func (sh *Shell) mountStep(kind, source, target string, ro bool) error {
	b := sh.Current()
	what := kind
	if kind == "bind" {
		what = source
		if ro {
			what += " (read-only)"
		}
	}
	do := func() (*step.Step, error) { return b.Mount(kind, source, target, ro) }
	ok := func() { sh.ok("mounted %s at %s inside box %s", what, target, b.Name) }
	// The read-only mounts show what they changed in the box's mount
	// table, options included.
	if kind == "sys" || kind == "cgroup" || ro {
		return sh.mountsBeforeAfter(b, do, ok)
	}
	st, err := do()
	sh.printStep(st)
	if err != nil {
		return err
	}
	ok()
	return nil
}

// overlayLayers looks up the layers of `mount overlay`, bottom first.
func (sh *Shell) overlayLayers(names []string) ([]rootfs.Layer, error) {
	store, err := sh.layers()
	if err != nil {
		return nil, err
	}
	var stack []rootfs.Layer
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			return nil, fmt.Errorf("layer %s is listed twice: a layer can appear once in a stack", name)
		}
		seen[name] = true
		if ls, _, ok := sh.imageLayers(name); ok {
			stack = append(stack, ls...)
			continue
		}
		if _, err := store.Get(name); err != nil {
			if errors.Is(err, layers.ErrBadName) && strings.ContainsAny(name, "/:") {
				// Shaped as an image reference, not as a layer's name.
				return nil, sh.orImages(fmt.Errorf("no such image %s (`images` lists them; `image pull` or `image load` adds one)", name))
			}
			return nil, sh.orImages(nearLayer(store, name, names, err))
		}
		stack = append(stack, rootfs.Layer{Name: name, Dir: store.Root(name)})
	}
	return stack, nil
}

func runMountOverlay(sh *Shell, c *Call) error {
	b := sh.Current()
	stack, err := sh.overlayLayers(c.Args)
	if err != nil {
		return err
	}
	st, err := b.MountOverlay(stack)
	sh.printStep(st)
	if err != nil {
		return err
	}
	store, err := sh.layers()
	if err != nil {
		return err
	}
	for _, l := range stack {
		if err := store.Lock(l.Name, b.Name); err != nil {
			return err
		}
	}
	for _, name := range c.Args {
		if _, im, ok := sh.imageLayers(name); ok {
			if err := sh.applyImage(b, im); err != nil {
				// The overlay stays (only `rm` undoes it): say what the box
				// is left with, as Docker would refuse to start the image.
				return fmt.Errorf("%w; the overlay is mounted without the image's settings, so box %s's commands would run as root with none of its Env or WorkingDir (Docker refuses to start such an image): `rm %s` and stack another", err, b.Name, b.Name)
			}
			sh.ok("image %s: its Env applies to exec and sh; its WorkingDir %q and User %q once the overlay is the box's / (pivot_root)", im.Name, im.Config.WorkingDir, im.Config.User)
		}
	}
	sh.ok("overlay of %s mounted in box %s (bottom to top); writes go to its own upper dir", strings.Join(c.Args, ", "), b.Name)
	if sh.stepPanelsUnseen() {
		return nil
	}
	snap, err := b.Stack(false)
	if err != nil {
		return err
	}
	fmt.Fprintln(sh.Out, viz.StackStepPanel(snap, sh.Width, sh.Theme))
	return nil
}

func (sh *Shell) showStack(files bool) error {
	snap, err := sh.Current().Stack(files)
	if err != nil {
		return err
	}
	fmt.Fprintln(sh.Out, viz.StackPanel(snap, sh.Width, sh.Theme))
	return nil
}

// printCalls lists a step's syscalls as they happened, for steps worth
// watching one call at a time (pivot_root).
func (sh *Shell) printCalls(st *step.Step) {
	if st == nil || sh.explain {
		return
	}
	if len(st.Calls) > 0 {
		fmt.Fprintln(sh.Out, viz.CallsPanel(st, sh.Width, sh.Theme))
	}
}

func completeLayerList(sh *Shell, args []string) []Suggestion {
	used := map[string]bool{}
	for _, a := range args[:len(args)-1] {
		used[a] = true
	}
	var out []Suggestion
	for _, s := range append(completeImages(sh, nil), completeLayers(sh, nil)...) {
		if !used[s.Text] {
			out = append(out, s)
		}
	}
	return out
}
