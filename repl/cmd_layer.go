package repl

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"stepbox/fixtures"
	"stepbox/primitives/layers"
	"stepbox/primitives/step"
	"stepbox/viz"
)

// layerStore opens the layer store once, building the builtin layers
// (base, fileA, …) the first time a session needs them.
type layerStore struct {
	once  sync.Once
	store *layers.Store
	err   error
}

func (sh *Shell) layers() (*layers.Store, error) {
	sh.layerStore.once.Do(func() {
		s, err := layers.Open(filepath.Join(sh.Session.Dirs.Lib, "layers"))
		if err == nil {
			s.InUse = sh.Session.LayerInUse
			err = fixtures.Ensure(s)
		}
		sh.layerStore.store, sh.layerStore.err = s, err
	})
	return sh.layerStore.store, sh.layerStore.err
}

// checkLayersAhead starts the layer check (layers: the builtins verified,
// a damaged one rebuilt) in the background where the store was built by
// an earlier session, so that the first `mount overlay` does not wait for
// it; the first session builds them when first asked, as before. The
// function returned waits for the check to end: a session waits for it
// before its teardown, so no write of it is cut short by the exit.
func (sh *Shell) checkLayersAhead() (wait func()) {
	if _, err := os.Stat(filepath.Join(sh.Session.Dirs.Lib, "layers")); err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sh.layers()
	}()
	return func() { <-done }
}

func init() {
	register(
		&Command{
			Name: "layers", Group: "filesystem", Usage: "layers",
			Summary: "list the read-only layers an overlay can stack",
			Kernel:  "reads the layer directories under the state dir: each is a plain directory tree, an overlay lowerdir",
			Example: "layers", Man: "overlayfs (Documentation/filesystems/overlayfs.rst)",
			Run: func(sh *Shell, c *Call) error {
				st, err := sh.layers()
				if err != nil {
					return err
				}
				list, err := st.List()
				if err != nil {
					return err
				}
				var rows []viz.LayerRow
				for _, l := range list {
					rows = append(rows, viz.LayerRow{Name: l.Name, Description: l.Description, Builtin: l.Builtin, LockedBy: l.LockedBy, Locked: l.Locked, Image: l.Image, Path: st.Root(l.Name)})
				}
				fmt.Fprintln(sh.Out, viz.LayersPanel(rows, sh.Width, sh.Theme))
				return nil
			},
		},
		&Command{
			Name: "layer", Group: "filesystem", Usage: "layer new|put|del|rm …",
			Summary: "make and change read-only layers",
			Kernel:  "a layer is a directory on the host: mkdir(2), open(2) and write(2) fill it, mknod(2) of a 0/0 character device records a deletion",
			Example: "layer put app /etc/motd 'hello'", Man: "mkdir(2), mknod(2), overlayfs",
			Sub: []*Command{
				{
					Name: "new", Usage: "layer new NAME [DESCRIPTION]", MinArgs: 1, MaxArgs: 2, Recorded: true,
					Summary: "make an empty layer", Kernel: "mkdir(2): a layer is a directory", Example: "layer new app", Man: "mkdir(2)",
					Plan: func(sh *Shell, c *Call) (*step.Step, error) {
						st, err := sh.layers()
						if err != nil {
							return nil, err
						}
						return st.PlanNew(c.Args[0])
					},
					Run: func(sh *Shell, c *Call) error {
						st, err := sh.layers()
						if err != nil {
							return err
						}
						desc := ""
						if len(c.Args) == 2 {
							desc = c.Args[1]
						}
						rec, err := st.New(c.Args[0], desc)
						sh.printStep(rec)
						if err != nil {
							return err
						}
						sh.ok("layer %s made at %s", c.Args[0], st.Root(c.Args[0]))
						return nil
					},
				},
				{
					Name: "put", Usage: "layer put NAME PATH [TEXT]", MinArgs: 2, MaxArgs: 3, Recorded: true,
					Summary: "write a file into a layer", Kernel: "openat(2) and write(2) inside the layer's directory", Example: "layer put app /etc/motd 'hello from app'", Man: "open(2)",
					Complete: completeLayers,
					Plan: func(sh *Shell, c *Call) (*step.Step, error) {
						st, err := sh.layers()
						if err != nil {
							return nil, err
						}
						return st.PlanPut(c.Args[0], c.Args[1], putText(c))
					},
					Run: func(sh *Shell, c *Call) error {
						st, err := sh.layers()
						if err != nil {
							return err
						}
						rec, err := st.Put(c.Args[0], c.Args[1], putText(c))
						sh.printStep(rec)
						if err != nil {
							return err
						}
						sh.ok("layer %s now holds %s", c.Args[0], c.Args[1])
						return nil
					},
				},
				{
					Name: "del", Usage: "layer del NAME PATH", MinArgs: 2, MaxArgs: 2, Recorded: true,
					Summary: "record a deletion: a whiteout that hides PATH of the layers below",
					Kernel:  "mknod(2) of a character device 0/0, the mark overlayfs reads as 'deleted here'", Example: "layer del app /etc/issue", Man: "mknod(2)",
					Complete: completeLayers,
					Plan: func(sh *Shell, c *Call) (*step.Step, error) {
						st, err := sh.layers()
						if err != nil {
							return nil, err
						}
						return st.PlanDel(c.Args[0], c.Args[1])
					},
					Run: func(sh *Shell, c *Call) error {
						st, err := sh.layers()
						if err != nil {
							return err
						}
						rec, err := st.Del(c.Args[0], c.Args[1])
						sh.printStep(rec)
						if err != nil {
							return err
						}
						sh.ok("layer %s now hides %s (a whiteout: character device 0/0)", c.Args[0], c.Args[1])
						return nil
					},
				},
				{
					Name: "rm", Usage: "layer rm NAME", MinArgs: 1, MaxArgs: 1, Recorded: true,
					Summary: "remove a layer of your own that no box has mounted now", Kernel: "unlink(2) and rmdir(2) of the layer's files", Example: "layer rm app", Man: "unlink(2), rmdir(2)",
					Complete: completeLayers,
					Plan: func(sh *Shell, c *Call) (*step.Step, error) {
						st, err := sh.layers()
						if err != nil {
							return nil, err
						}
						return st.PlanRemove(c.Args[0])
					},
					Run: func(sh *Shell, c *Call) error {
						st, err := sh.layers()
						if err != nil {
							return err
						}
						rec, err := st.Remove(c.Args[0])
						sh.printStep(rec)
						if err != nil {
							return err
						}
						sh.ok("layer %s removed", c.Args[0])
						return nil
					},
				},
			},
		},
	)
}

// putText is the file content `layer put` writes: TEXT with a final newline.
func putText(c *Call) string {
	if len(c.Args) < 3 {
		return ""
	}
	text := c.Args[2]
	if !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	return text
}

func completeLayers(sh *Shell, args []string) []Suggestion {
	if len(args) > 1 {
		return nil
	}
	st, err := sh.layers()
	if err != nil {
		return nil
	}
	list, _ := st.List()
	var out []Suggestion
	for _, l := range list {
		d := l.Description
		if d == "" {
			d = "a layer with no description"
		}
		if l.Locked {
			d = "(read-only) " + d
		}
		out = append(out, Suggestion{Text: l.Name, Description: d})
	}
	return out
}
