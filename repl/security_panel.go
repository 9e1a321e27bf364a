package repl

import (
	"fmt"

	"stepbox/viz"
)

func init() {
	register(&Command{
		Name: "security", Group: "security", Usage: "security [NAME]", MaxArgs: 1, NeedsBox: true,
		Summary: "the box's privileges beside Docker's default: capabilities, no_new_privs, seccomp, masked paths, devices, user namespace",
		Kernel:  "reads /proc/PID/status (CapEff, NoNewPrivs, Seccomp), /proc/PID/mountinfo, the devices cgroup and /proc/PID/uid_map of the box's PID 1; statx(2) of each guarded path and ioctl(NS_GET_USERNS) of its mount namespace tell a mask the box made itself and can unmount, which counts as open",
		Example: "security", Man: "capabilities(7), seccomp(2), proc(5)", Complete: completeBoxes,
		Run: func(sh *Shell, c *Call) error {
			b := sh.Current()
			if len(c.Args) == 1 {
				var err error
				if b, err = sh.boxNamed(c.Args[0]); err != nil {
					return err
				}
			}
			ctx, cancel := sh.mountsPanelRead()
			defer cancel()
			snap, err := b.SecuritySnapshot(ctx)
			if err != nil {
				return err
			}
			fmt.Fprintln(sh.Out, viz.SecurityPanel(snap, sh.Width, sh.Theme))
			return nil
		},
	})
}
