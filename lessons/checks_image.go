package lessons

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"stepbox/primitives/inroot"
	"stepbox/primitives/rootfs"
)

// Checks on real images and what leaves stepbox: the image layers a box's
// overlay stacks, read from its stack, and the runtime bundle `export
// bundle` wrote for it, read from the bundle's config.json and rootfs/.

// specNamespace is runtime-spec's name of each of stepbox's namespace
// types that runc makes.
var specNamespace = map[string]specs.LinuxNamespaceType{
	"uts": specs.UTSNamespace, "ipc": specs.IPCNamespace, "net": specs.NetworkNamespace, "pid": specs.PIDNamespace,
	"mnt": specs.MountNamespace, "cgroup": specs.CgroupNamespace, "user": specs.UserNamespace,
}

func init() {
	register(
		&Check{
			Name: "image-stacked", Usage: "image-stacked [IMAGE]", MaxArgs: 1,
			Summary: "a box's overlay stacks the layers of an image (IMAGE, when given), one lower layer per layer of the image",
			Findings: map[string]string{
				"no-overlay": "The box has no overlay yet: `unshare mnt`, then `mount overlay IMAGE` (`images` lists them).",
				"no-image":   "The box's overlay stacks plain layers, none of an image: make a box anew (`rm` it, `new`, `unshare mnt pid`) and `mount overlay` the image by its name.",
			},
			Run: func(s *State, args []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if b.Stack == nil {
						return fail("no-overlay", "box %s has no overlay", b.Name)
					}
					var from []rootfs.LayerInfo
					for _, l := range b.Stack.Lowers {
						if l.Origin != "" && (len(args) == 0 || ofImage(l.Origin, args[0])) {
							from = append(from, l)
						}
					}
					if len(from) == 0 {
						want := "an image"
						if len(args) == 1 {
							want = "image " + args[0]
						}
						return fail("no-image", "box %s: no layer of %s in its overlay", b.Name, want)
					}
					whiteouts := 0
					for _, l := range from {
						whiteouts += l.Whiteouts
					}
					return pass("box %s stacks %d layer(s) of %s, holding %d whiteout(s) from the image's tars", b.Name, len(from), imageOf(from[0].Origin), whiteouts)
				})
			},
		},
		&Check{
			Name: "bundle-exported", Usage: "bundle-exported DIR", MinArgs: 1, MaxArgs: 1,
			Summary: "an OCI runtime bundle of a box is in DIR, under the box's state dir ($BOX_DIR/DIR): its config.json asks for the box's namespaces and hostname, and its rootfs/ holds the files the box created",
			Args: func(args []string) error {
				if filepath.IsAbs(args[0]) || !filepath.IsLocal(args[0]) {
					return fmt.Errorf("%q: give the bundle's directory relative to the box's state dir, as $BOX_DIR/DIR names it", args[0])
				}
				return nil
			},
			Findings: map[string]string{
				"no-bundle":      "There is no bundle of the box yet: `export bundle $BOX_DIR/bundle`.",
				"bundle-differs": "The bundle there describes another state of the box: it was written before the box changed. Write it anew into an empty directory: `!rm -rf $BOX_DIR/bundle`, then `export bundle $BOX_DIR/bundle`.",
			},
			Run: func(s *State, args []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result { return judgeBundle(b, args[0]) })
			},
		},
	)
}

// ofImage reports whether a layer's origin ("alpine:latest #0: …") is
// image n's, named as `mount overlay` takes it.
func ofImage(origin, n string) bool {
	im := imageOf(origin)
	return im == n || im == n+":latest"
}

// imageOf is the image an origin names.
func imageOf(origin string) string {
	im, _, _ := strings.Cut(origin, " #")
	return im
}

// judgeBundle compares the bundle in dir, under the box's state dir,
// with the box as the kernel shows it.
func judgeBundle(b *BoxState, dir string) Result {
	if b.Dir == "" {
		return fail("no-bundle", "box %s: its state dir is unknown", b.Name)
	}
	bundle := filepath.Join(b.Dir, dir)
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return fail("no-bundle", "box %s: no %s/config.json", b.Name, bundle)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil || spec.Linux == nil || spec.Root == nil {
		return fail("no-bundle", "box %s: %s/config.json is no runtime-spec config", b.Name, bundle)
	}
	var asked []string
	for _, n := range spec.Linux.Namespaces {
		asked = append(asked, string(n.Type))
	}
	for t, st := range specNamespace {
		if b.ownNamespace(t) != slices.Contains(asked, string(st)) {
			return fail("bundle-differs", "box %s: own %s namespace %v; its bundle asks for %s", b.Name, t, b.ownNamespace(t), strings.Join(asked, " "))
		}
	}
	if b.ownNamespace("uts") && spec.Hostname != b.UTS.Box {
		return fail("bundle-differs", "box %s: hostname %q; its bundle's %q", b.Name, b.UTS.Box, spec.Hostname)
	}
	root := filepath.Join(bundle, spec.Root.Path)
	if b.Stack != nil {
		for _, c := range b.Stack.Changes {
			if c.Kind != rootfs.Created || c.Dir {
				continue
			}
			if _, err := inroot.Lstat(root, c.Path); err != nil {
				return fail("bundle-differs", "box %s created %s; its bundle's rootfs lacks it", b.Name, c.Path)
			}
		}
	}
	return pass("box %s: %s holds config.json (namespaces %s, process %q) and rootfs/, a copy of its root", b.Name, bundle, strings.Join(asked, " "), strings.Join(spec.Process.Args, " "))
}
