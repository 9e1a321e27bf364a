package repl

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"stepbox/fixtures"
	"stepbox/primitives"
	"stepbox/primitives/images"
	"stepbox/primitives/inroot"
	"stepbox/primitives/rootfs"
	"stepbox/viz"
)

// imageStore opens the image store once, beside the layer store.
type imageStore struct {
	once  sync.Once
	store *images.Store
	err   error
}

func (sh *Shell) images() (*images.Store, error) {
	sh.imageStore.once.Do(func() {
		ls, err := sh.layers()
		if err == nil {
			sh.imageStore.store, err = images.Open(filepath.Join(sh.Session.Dirs.Lib, "images"), ls)
		}
		sh.imageStore.err = err
	})
	return sh.imageStore.store, sh.imageStore.err
}

func init() {
	register(
		&Command{
			Name: "images", Group: "filesystem", Usage: "images",
			Summary: "list the images pulled or loaded, like `docker images`",
			Kernel:  "reads the image store: an OCI image layout under the state dir, each image layer unpacked once as a read-only layer",
			Example: "images", Man: "OCI image-spec (image-layout.md)",
			Run: func(sh *Shell, c *Call) error {
				st, err := sh.images()
				if err != nil {
					return err
				}
				list, err := st.List()
				if err != nil {
					return err
				}
				var rows []viz.ImageRow
				for _, im := range list {
					var size int64
					for _, l := range im.Layers {
						size += l.Size
					}
					rows = append(rows, viz.ImageRow{Name: im.Name, Digest: im.Digest, Platform: im.Platform, Layers: len(im.Layers), Size: size, Source: im.Source})
				}
				fmt.Fprintln(sh.Out, viz.ImagesPanel(rows, sh.Width, sh.Theme))
				return nil
			},
		},
		&Command{
			Name: "image", Group: "filesystem", Usage: "image pull|load|demo|show|rm …",
			Summary: "real OCI images as read-only layers: `mount overlay IMAGE` stacks them",
			Kernel:  "an image is a stack of tar files; each is unpacked once into a layer directory, its OCI whiteouts (.wh.NAME) turned into overlayfs's (a 0/0 character device, the overlay.opaque xattr)",
			Example: "image pull alpine", Man: "OCI image-spec (layer.md), overlayfs",
			Sub: []*Command{
				{
					Name: "pull", Usage: "image pull REF", MinArgs: 1, MaxArgs: 1, Recorded: true,
					Summary: "fetch an image from a registry (Docker Hub by default) for this host's platform",
					Kernel:  "HTTPS to the registry (OCI distribution-spec): the manifest, the config and each layer's blob, digests checked; then each layer unpacked",
					Example: "image pull alpine:3.20", Man: "OCI distribution-spec",
					Run: runImagePull,
				},
				{
					Name: "load", Usage: "image load PATH [NAME]", MinArgs: 1, MaxArgs: 2, Recorded: true,
					Summary: "add the images of a `docker save` archive, an OCI layout directory or a tar of one; each is named by its tag in the archive, or NAME (as `docker tag` would) when the archive holds one image; each layer is checked against the config's rootfs.diff_ids",
					Kernel:  "reads the archive's manifest and blobs, then unpacks each layer as `image pull` does",
					Example: "image load alpine.tar", Man: "docker-save(1), OCI image-spec (image-layout.md)",
					Complete: completePath,
					Run:      runImageLoad,
				},
				{
					Name: "demo", Usage: "image demo FILE", MinArgs: 1, MaxArgs: 1,
					Summary: "write a `docker save` archive built offline from the base layer, for `image load` where no registry is reachable",
					Kernel:  "tar(5) of the base layer's tree, a second layer with a whiteout, an image config with Env, WorkingDir and Cmd",
					Example: "image demo /tmp/demo.tar", Man: "docker-save(1)",
					Complete: completePath,
					Run: func(sh *Shell, c *Call) error {
						ls, err := sh.layers()
						if err != nil {
							return err
						}
						if err := fixtures.WriteDemoImage(ls.Root("base"), c.Args[0], images.HostPlatform().Architecture); err != nil {
							return fmt.Errorf("image demo: %w", err)
						}
						sh.ok("%s holds image %s; `image load %s` adds it", c.Args[0], fixtures.DemoImageTag, c.Args[0])
						return nil
					},
				},
				{
					Name: "show", Usage: "image show IMAGE", MinArgs: 1, MaxArgs: 1,
					Summary: "each layer of an image: the command that made it, its size, what it adds, changes and removes",
					Kernel:  "walks each unpacked layer: a path no layer below has is added, one a layer below has is modified, a whiteout or opaque dir removes",
					Example: "image show alpine", Man: "overlayfs",
					Complete: completeImages,
					Run:      runImageShow,
				},
				{
					Name: "rm", Usage: "image rm IMAGE", MinArgs: 1, MaxArgs: 1, Recorded: true,
					Summary: "remove an image, and its layers no other image uses, once no box has them mounted",
					Kernel:  "unlink(2) of its blobs in the OCI layout and of its unpacked layer directories",
					Example: "image rm alpine", Man: "unlink(2)",
					Complete: completeImages,
					Run: func(sh *Shell, c *Call) error {
						st, err := sh.images()
						if err != nil {
							return err
						}
						im, removed, err := st.Remove(c.Args[0])
						if err != nil {
							return err
						}
						sh.ok("image %s removed, and its layers %s", im.Name, orNothing(removed))
						return nil
					},
				},
			},
		},
	)
}

func orNothing(list []string) string {
	if len(list) == 0 {
		return "(none: other images use them)"
	}
	return strings.Join(list, ", ")
}

// progress prints each layer's way into the store: a bar redrawn in
// place on a terminal, one line per change otherwise (and with --plain or
// NO_COLOR, which allow no escape codes).
func (sh *Shell) progress() images.Progress {
	tty := sh.Terminal != nil && !sh.Theme.Plain
	last := map[int]images.State{}
	return func(e images.Event) {
		line := viz.ProgressLine(e.Index, e.Count, e.Digest, string(e.State), e.Done, e.Total, tty, sh.Theme)
		if e.Layer != "" {
			line += " → layer " + e.Layer
		}
		if e.Note != "" {
			line += " (" + e.Note + ")"
		}
		if e.State == images.Fetching {
			if tty {
				fmt.Fprint(sh.Out, "\r\x1b[K"+line)
			}
			last[e.Index] = e.State
			return
		}
		if tty && last[e.Index] == images.Fetching {
			fmt.Fprint(sh.Out, "\r\x1b[K")
		}
		last[e.Index] = e.State
		// A line with a note folds at words, under the layer's line.
		fmt.Fprintln(sh.Out, viz.Wrap(line, sh.Width, "  "))
	}
}

func runImagePull(sh *Shell, c *Call) error {
	st, err := sh.images()
	if err != nil {
		return err
	}
	im, err := st.Pull(sh.interrupt, c.Args[0], images.PullOptions{}, sh.progress())
	if err != nil {
		return err
	}
	sh.ok("image %s (%s, %d layers) is in the store; `mount overlay %s` stacks it", im.Name, viz.Escape(im.Platform), len(im.Layers), im.Name)
	sh.sayReplaced(im)
	return nil
}

func runImageLoad(sh *Shell, c *Call) error {
	st, err := sh.images()
	if err != nil {
		return err
	}
	as := ""
	if len(c.Args) == 2 {
		as = c.Args[1]
	}
	ims, err := st.Load(c.Args[0], as, sh.progress())
	for _, im := range ims {
		sh.ok("image %s (%s, %d layers) loaded; `mount overlay %s` stacks it", im.Name, viz.Escape(im.Platform), len(im.Layers), im.Name)
		sh.sayReplaced(im)
	}
	return err
}

// sayReplaced tells that im's name named another image until now, and
// which boxes still stand on that image's layers.
func (sh *Shell) sayReplaced(im images.Image) {
	old := im.Replaced
	if old == nil {
		return
	}
	kept := map[string]bool{}
	for _, l := range im.Layers {
		kept[l.Name] = true
	}
	var boxes []string
	for _, b := range sh.Session.Boxes() {
		for _, l := range b.FS().Layers {
			if !kept[l.Name] && slices.ContainsFunc(old.Layers, func(o images.Layer) bool { return o.Name == l.Name }) {
				boxes = append(boxes, b.Name)
				break
			}
		}
	}
	msg := fmt.Sprintf("note: %s named image %s until now; it names %s from now on", im.Name, shortDigest(old.Digest), shortDigest(im.Digest))
	if len(im.Collected) > 0 {
		msg += fmt.Sprintf("; the old image's layers %s were removed", strings.Join(im.Collected, ", "))
	}
	if len(boxes) > 0 {
		msg += fmt.Sprintf("; box %s still stands on the old image's layers (%s), removed once no box does", strings.Join(boxes, ", "), strings.Join(im.Kept, ", "))
	}
	fmt.Fprintln(sh.Out, msg)
	if im.CollectErr != nil {
		sh.say("warning: %s", printable(errorText(im.CollectErr)))
	}
}

func shortDigest(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}

func runImageShow(sh *Shell, c *Call) error {
	st, err := sh.images()
	if err != nil {
		return err
	}
	im, err := st.Get(c.Args[0])
	if err != nil {
		return fmt.Errorf("image show: %w", err)
	}
	changes, err := st.Changes(im)
	if err != nil {
		return err
	}
	var rows []viz.ImageLayerRow
	for i, ch := range changes {
		rows = append(rows, viz.ImageLayerRow{Index: i, Layer: ch.Layer.Name, Size: ch.Layer.Size, CreatedBy: ch.Layer.CreatedBy,
			Added: ch.Added, Modified: ch.Modified, Removed: ch.Removed, Skipped: ch.Skipped})
	}
	fmt.Fprintln(sh.Out, viz.ImageShowPanel(im.Name, rows, 8, sh.Width, sh.Theme))
	cfg := im.Config
	sh.say("%s", viz.ImageConfigLine(cfg.Env, cfg.WorkingDir, cfg.User, cfg.Entrypoint, cfg.Cmd))
	return nil
}

func completeImages(sh *Shell, args []string) []Suggestion {
	if len(args) > 1 {
		return nil
	}
	st, err := sh.images()
	if err != nil {
		return nil
	}
	list, _ := st.List()
	var out []Suggestion
	for _, im := range list {
		out = append(out, Suggestion{Text: im.Name, Description: fmt.Sprintf("image, %d layers, %s", len(im.Layers), im.Platform)})
	}
	return out
}

// imageLayers expands a name of `mount overlay` that names an image
// into its layers, bottom first; ok is false for a plain layer's name.
func (sh *Shell) imageLayers(n string) (layers []rootfs.Layer, im images.Image, ok bool) {
	st, err := sh.images()
	if err != nil || sh.isLayer(n) {
		return nil, images.Image{}, false // a layer's own name wins
	}
	im, err = st.Get(n)
	if err != nil {
		return nil, images.Image{}, false
	}
	for i, l := range im.Layers {
		origin := fmt.Sprintf("%s #%d", im.Name, i)
		if l.CreatedBy != "" {
			origin += ": " + strings.Join(strings.Fields(strings.TrimPrefix(l.CreatedBy, "/bin/sh -c ")), " ")
		}
		layers = append(layers, rootfs.Layer{Name: l.Name, Dir: st.Layers.Root(l.Name), Origin: origin})
	}
	return layers, im, true
}

func (sh *Shell) isLayer(n string) bool {
	st, err := sh.layers()
	if err != nil {
		return false
	}
	_, err = st.Get(n)
	return err == nil
}

// applyImage makes the image's config the box's defaults for the
// commands it runs: Env now, WorkingDir and User once the overlay is its
// root. User is resolved against the image's own /etc/passwd and
// /etc/group, read inside the box's merged root as the box would see
// them: a symlink there resolves in the box, never on the host, and a
// FIFO, device or huge file is refused.
func (sh *Shell) applyImage(b *primitives.Box, im images.Image) error {
	p := primitives.ProcessDefaults{Image: im.Name, Env: im.Config.Env, Dir: im.Config.WorkingDir, User: im.Config.User,
		Argv: append(append([]string(nil), im.Config.Entrypoint...), im.Config.Cmd...)}
	if u := im.Config.User; u != "" {
		var files [2][]byte
		for i, name := range []string{"/etc/passwd", "/etc/group"} {
			data, err := inroot.ReadFile(b.HostRoot(), name, maxIDFile)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("mount overlay %s: the image's User %q: %w", im.Name, u, err)
			}
			files[i] = data
		}
		uid, gid, err := images.ResolveUser(u, bytes.NewReader(files[0]), bytes.NewReader(files[1]))
		if err != nil {
			return fmt.Errorf("mount overlay %s: the image's User: %w", im.Name, err)
		}
		p.IDs = &primitives.IDs{UID: uid, GID: gid}
		if err := b.CheckCommandIDs("mount overlay "+im.Name, p.IDs); err != nil {
			return err
		}
	}
	b.SetProcessDefaults(p)
	return nil
}

// maxIDFile bounds the /etc/passwd and /etc/group read from an image:
// a real one is a few KB.
const maxIDFile = 4 << 20

// execArgv is what `exec` runs: its arguments, or with none the image's
// Entrypoint and Cmd, as `docker run IMAGE` does.
func (sh *Shell) execArgv(args []string) ([]string, error) {
	if len(args) > 0 {
		return args, nil
	}
	b := sh.Current()
	p := b.ProcessDefaults()
	if len(p.Argv) == 0 {
		if p.Image == "" {
			return nil, errors.New("exec: give a command (exec CMD [ARG…]); with none, exec runs the Entrypoint and Cmd of the image the overlay stacks, and box " + b.Name + " stacks no image")
		}
		return nil, fmt.Errorf("exec: give a command: image %s has no Entrypoint or Cmd", p.Image)
	}
	return p.Argv, nil
}

// orImages adds the images there are to err, a name that is no layer:
// `mount overlay` takes either.
func (sh *Shell) orImages(err error) error {
	st, serr := sh.images()
	if serr != nil {
		return err
	}
	list, _ := st.List()
	if len(list) == 0 {
		return err
	}
	names := make([]string, len(list))
	for i, im := range list {
		names[i] = im.Name
	}
	return fmt.Errorf("%w; images are %s", err, strings.Join(names, ", "))
}
