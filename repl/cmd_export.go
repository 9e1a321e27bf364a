package repl

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"stepbox/primitives"
	"stepbox/primitives/export"
	"stepbox/primitives/outfile"
	"stepbox/primitives/step"
	"stepbox/viz"
)

func init() {
	register(
		&Command{
			Name: "export", Group: "box", Usage: "export bundle DIR|script FILE", NeedsBox: true,
			Summary: "what the box has, as an OCI runtime bundle for runc or as a script of standard tools",
			Kernel:  "reads the box's namespaces, mounts, cgroup limits and capabilities from /proc and the cgroup files, and copies its merged root",
			Example: "export bundle /tmp/web", Man: "OCI runtime-spec (config.md), runc(8)",
			Sub: []*Command{
				{
					Name: "bundle", Usage: "export bundle DIR", MinArgs: 1, MaxArgs: 1, NeedsBox: true,
					Summary: "write DIR/config.json (runtime-spec) and DIR/rootfs, a copy of the box's root: `runc run -b DIR NAME` starts the same container",
					Kernel:  "namespaces from the box's steps, limits read from its cgroup, capability sets from /proc/PID/status, mounts from its mountinfo (in a user namespace, their uid= and gid= in the box's IDs, and a tmpfs at /dev where the box has none: runc binds the host's device nodes there); the root copied file by file",
					Example: "export bundle /tmp/web", Man: "runc-run(8)",
					Complete: completePath,
					Run:      runExportBundle,
				},
				{
					Name: "script", Usage: "export script FILE", MinArgs: 1, MaxArgs: 1, NeedsBox: true,
					Summary: "write a POSIX sh script that rebuilds the box with standard tools: unshare, mount, pivot_root, cgroup files",
					Kernel:  "the same reading of the box as export bundle, written as util-linux and coreutils commands instead of config.json",
					Example: "export script /tmp/web.sh", Man: "unshare(1), mount(8), pivot_root(8)",
					Complete: completePath,
					Run:      runExportScript,
				},
			},
		},
	)
}

func runExportBundle(sh *Shell, c *Call) error {
	b := sh.Current()
	desc, err := b.Export()
	if err != nil {
		return fmt.Errorf("export bundle: %w", err)
	}
	var notes []string
	if slices.Contains(desc.Namespaces, "time") {
		if v, old := runcBefore12(); old {
			desc = export.WithoutTime(desc)
			notes = append(notes, fmt.Sprintf("the box's time namespace is left out: this host's runc is %s, and runc supports time namespaces from 1.2", v))
		}
	}
	// Its rootfs has the box's symlinks: `!` checks it as the box's tree
	// (ut33 F4), from before the first file is copied there.
	if err := sh.keepBundle(b.Name, c.Args[0]); err != nil {
		return fmt.Errorf("export bundle %s: %w", viz.Escape(c.Args[0]), err)
	}
	devices, skipped, err := export.WriteBundle(c.Args[0], desc)
	if err != nil {
		return err
	}
	// Its files are the box's ID block's: no later box may get the block
	// while they are there (ut31 F5).
	if err := b.KeepIDsFor(c.Args[0]); err != nil {
		return fmt.Errorf("%w: the bundle is written, but a later box may be given its IDs and own its rootfs/: remove it", err)
	}
	notes = append(notes, export.Reach(desc))
	if n := export.DevNote(desc); n != "" {
		notes = append(notes, n)
	}
	if n := primitives.BundleOutOfReach(c.Args[0], desc); n != "" {
		notes = append(notes, n)
	}
	if devices > 0 {
		notes = append(notes, fmt.Sprintf("%s of the box's root left out of rootfs: runc makes /dev from config.json, "+
			"and a copied node (any major:minor the box chose) would open the host's device to whoever reaches the bundle", step.Count(devices, "device node")))
	}
	if skipped != "" {
		notes = append(notes, "rootfs is not all of the box's root: "+viz.Escape(skipped))
	}
	if n := leftOutNote(desc, "config.json"); n != "" {
		notes = append(notes, n)
	}
	var kinds []string
	for _, m := range desc.Mounts {
		// The box named the mount point: on one line, or a "\n" in it
		// prints lines of its choosing under stepbox's ✓ (ut30 F3).
		kinds = append(kinds, viz.Escape(m.Type+" "+m.Target))
	}
	if len(kinds) == 0 {
		kinds = []string{"none"}
	}
	sh.ok("bundle of box %s written to %s: namespaces %s; mounts %s; %q runs", b.Name, c.Args[0],
		strings.Join(desc.Namespaces, " "), strings.Join(kinds, ", "), strings.Join(desc.Args, " "))
	for _, n := range notes {
		sh.say("  note: %s", viz.Escape(n))
	}
	sh.say("  run it: runc run -b %s %s", viz.Escape(c.Args[0]), b.Name)
	return nil
}

func runExportScript(sh *Shell, c *Call) error {
	b := sh.Current()
	desc, err := b.Export()
	if err != nil {
		return fmt.Errorf("export script: %w", err)
	}
	// 0700: root runs it; no one else reads or changes it.
	if err := outfile.Write(c.Args[0], []byte(export.Script(desc)), 0o700); err != nil {
		return fmt.Errorf("export script: %w", err)
	}
	sh.ok("script rebuilding box %s written to %s; run it as root: sh %s [CMD…]", b.Name, c.Args[0], c.Args[0])
	if n := export.NotCarried(desc); len(n) > 0 {
		sh.say("  note: the script does not carry the box's %s: no standard tool sets them after pivot_root; `export bundle` carries them to runc", strings.Join(n, " and "))
	}
	if n := leftOutNote(desc, "the script"); n != "" {
		sh.say("  note: %s", viz.Escape(n))
	}
	for _, w := range export.EnvLeftOut(desc) {
		sh.say("  note: the script does not carry %s", viz.Escape(w))
	}
	return nil
}

// leftOutNote says which mounts of the box an export (in) does not carry,
// or "": those the box made itself, whose host source stepbox cannot know.
func leftOutNote(desc export.Box, in string) string {
	n := len(desc.LeftOut)
	if n == 0 {
		return ""
	}
	shown, more := desc.LeftOut, ""
	if n > 5 {
		shown, more = shown[:5], fmt.Sprintf(" and %d more", n-5)
	}
	return fmt.Sprintf("%s does not carry %s the box made itself: %s%s; its mount table shows their filesystem, not which host path or device they show. "+
		"Made with `mount bind HOSTDIR PATH` or `mount tmpfs PATH`, a mount is carried", in, step.Count(n, "mount"), strings.Join(shown, ", "), more)
}

// runcBefore12 reports the host's runc version when it is older than 1.2,
// the first to know the runtime-spec's time namespace.
func runcBefore12() (string, bool) {
	out, err := exec.Command("runc", "--version").Output()
	if err != nil {
		return "", false
	}
	var major, minor int
	line, _, _ := strings.Cut(string(out), "\n")
	v := strings.TrimPrefix(line, "runc version ")
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return "", false
	}
	return v, major < 1 || major == 1 && minor < 2
}
