package repl

import (
	"errors"
	"fmt"

	"stepbox/primitives"
	"stepbox/primitives/step"
	"stepbox/viz"
)

func init() {
	register(&Command{
		Name: "status", Group: "box", Usage: "status", NeedsBox: true,
		Summary: "every panel of the current box at once: namespaces, layer stack, cgroup, processes",
		Kernel:  "reads /proc/PID/ns, the layer and upper dirs, the cgroup's control files and /proc; changes nothing",
		Example: "status", Man: "namespaces(7), cgroups(7), proc(5)",
		Run: runStatus,
	})
}

// runStatus shows the current box whole, for a lecturer to put on the
// screen at any point: each panel the box has a subject for, and a line
// saying which step makes the ones it has not.
func runStatus(sh *Shell, c *Call) error {
	b := sh.Current()
	th := sh.Theme
	sh.say("%s", th.Title.Render(fmt.Sprintf("box %s · id %s · %s", b.Name, b.ID, stageWords(b))))
	sh.say("")
	if err := sh.showNamespaces(b); err != nil {
		return err
	}
	sh.say("")
	if b.FS().Merged == "" {
		sh.say("%s", th.Dim.Render("no root filesystem yet: `mount overlay base` stacks one"))
	} else if err := sh.showStack(false); err != nil {
		return err
	}
	sh.say("")
	if b.Cgroup() == nil && errors.Is(primitives.ErrNoCgroup(), primitives.ErrNoCgroupRootless) {
		sh.say("%s", th.Dim.Render("no cgroup: "+primitives.ErrNoCgroupRootless.Error()))
	} else if b.Cgroup() == nil {
		sh.say("%s", th.Dim.Render("no cgroup yet: `cgroup new` makes one"))
	} else if err := sh.showCgroup(); err != nil {
		return err
	}
	sh.say("")
	root, err := sh.Session.ProcessTree()
	if err != nil {
		return err
	}
	fmt.Fprintln(sh.Out, viz.ProcessPanel(onlyBox(root, b.Name), sh.Width, th))
	return nil
}

// stageWords says in words what the prompt's stage says in marks.
func stageWords(b *primitives.Box) string {
	ns := "in every host namespace"
	if u := b.Unshared(); len(u) > 0 {
		ns = step.Count(len(u), "namespace") + " of its own"
	}
	root := map[string]string{"": "the host's root", "overlay": "an overlay, not yet its root", "pivot": "its overlay as root (pivot_root)", "chroot": "its overlay as root (chroot)"}[rootStage(b.FS())]
	cg := "no cgroup"
	if g := b.Cgroup(); g != nil {
		cg = "cgroup " + g.Name
	}
	return ns + " · " + root + " · " + cg
}

// onlyBox is the session's process tree with only box name's branch.
func onlyBox(root *primitives.ProcessNode, name string) *primitives.ProcessNode {
	n := *root
	n.Children = nil
	for _, c := range root.Children {
		if c.Box == name {
			n.Children = append(n.Children, c)
		}
	}
	return &n
}
