package lessons

import (
	"fmt"
	"path"
	"slices"
	"stepbox/primitives/step"
	"strings"

	"stepbox/primitives/rootfs"
)

// Checks on the filesystem: the box's overlay and what its upper dir
// holds, read from the layer dirs; its root and mounts, read from
// /proc/PID/root and /proc/PID/mountinfo.

var noOverlay = "The box has no overlay yet: `unshare mnt`, then `mount overlay base`."

func init() {
	register(
		&Check{
			Name: "overlay-mounted", Usage: "overlay-mounted", Summary: "a box with its own mount namespace has an overlay mounted in it",
			Findings: map[string]string{
				"shares-mnt": "The box shares the host's mount namespace, so stepbox will not mount anything for it: `unshare mnt` first.",
				"no-overlay": "Nothing is stacked yet: `mount overlay base`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if !b.ownNamespace("mnt") {
						return fail("shares-mnt", "box %s: mnt is the host's", b.Name)
					}
					m := b.overlayMount()
					if m == nil {
						return fail("no-overlay", "box %s: no overlay in its mount table", b.Name)
					}
					return pass("box %s: overlay mounted at %s, in its mount namespace only", b.Name, m.Point)
				})
			},
		},
		&Check{
			Name: "private-mount", Usage: "private-mount", Summary: "a box has its own mount namespace holding a mount the host's does not",
			Findings: map[string]string{
				"shares-mnt":   "The box shares the host's mount namespace: anything mounted for it would be mounted on the host. `unshare mnt` first.",
				"no-new-mount": "The box's mount table is still the copy it got from the host: mount something in it, e.g. `exec mount -t tmpfs scratch /mnt`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if !b.ownNamespace("mnt") {
						return fail("shares-mnt", "box %s: mnt is the host's", b.Name)
					}
					added := rootfs.DiffMounts(b.HostMounts, b.Mounts).Added
					if len(added) == 0 {
						return fail("no-new-mount", "box %s: every mount in its table is a copy of the host's", b.Name)
					}
					m := added[len(added)-1]
					return pass("box %s: %s on %s, in its mount table only", b.Name, m.FSType, m.Point)
				})
			},
		},
		&Check{
			Name: "union", Usage: "union", Summary: "a box's overlay merges two or more layers, and its view holds files of at least two",
			Findings: map[string]string{
				"no-overlay": noOverlay,
				"one-layer":  "The overlay has one lower layer, so there is nothing to merge: make a box whose overlay stacks two, e.g. `mount overlay fileA fileB`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if b.Stack == nil {
						return fail("no-overlay", "box %s has no overlay", b.Name)
					}
					from := map[string]bool{}
					for _, o := range b.Stack.Files {
						if !o.Dir && o.Layer != rootfs.UpperName {
							from[o.Layer] = true
						}
					}
					if len(b.Stack.Lowers) < 2 || len(from) < 2 {
						return fail("one-layer", "box %s: %d lower layer(s), files from %d", b.Name, len(b.Stack.Lowers), len(from))
					}
					return pass("box %s sees files of %s in one tree", b.Name, strings.Join(sortedKeys(from), " and "))
				})
			},
		},
		&Check{
			Name: "shadowed", Usage: "shadowed [LOWER UPPER]", MaxArgs: 2,
			Summary: "two layers of a box's overlay hold the same file, and the upper one wins (UPPER stacked above LOWER, when given)",
			Args: func(args []string) error {
				if len(args) == 1 {
					return fmt.Errorf("name two layers, bottom first, as `mount overlay` takes them")
				}
				return nil
			},
			Findings: map[string]string{
				"no-overlay":      noOverlay,
				"nothing-shadows": "No file is in two layers of the overlay: stack a layer that replaces a file of the one below, e.g. `mount overlay base motd`.",
				"wrong-order":     "The layers are stacked the other way round. `mount overlay` takes them bottom first, so the last one named sits on top: `rm` the box, make it again and name the lower layer first.",
			},
			Run: func(s *State, args []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if b.Stack == nil {
						return fail("no-overlay", "box %s has no overlay", b.Name)
					}
					if len(b.Shadows) == 0 {
						return fail("nothing-shadows", "box %s: no file is in two of its layers", b.Name)
					}
					sh := b.Shadows[0]
					if len(args) == 2 {
						lower, upper := args[0], args[1]
						found := false
						for _, x := range b.Shadows {
							lo, up := slices.Index(x.Layers, lower), slices.Index(x.Layers, upper)
							if lo < 0 || up < 0 {
								continue
							}
							if lo > up {
								return fail("wrong-order", "box %s stacks %s above %s: %s is %s's", b.Name, lower, upper, x.Path, lower)
							}
							sh, found = x, true
							break
						}
						if !found {
							return fail("nothing-shadows", "box %s: no file is in both %s and %s", b.Name, lower, upper)
						}
					}
					return pass("box %s: %s is in %s; it reads %s's", b.Name, sh.Path, strings.Join(sh.Layers, " and "), b.origin(sh.Path))
				})
			},
		},
		&Check{
			Name: "upper-created", Usage: "upper-created [PATH]", MaxArgs: 1,
			Summary: "a box's upper dir holds a file created in the box (PATH, when given)",
			Args: func(args []string) error {
				if len(args) == 1 && !path.IsAbs(args[0]) {
					return fmt.Errorf("%q: give the path as the box sees it, starting with /", args[0])
				}
				return nil
			},
			Findings: map[string]string{
				"no-overlay":  noOverlay,
				"not-created": "The upper dir holds no new file yet: create one in the box's root, e.g. `exec touch /test` after `pivot_root`, or `!touch $BOX_ROOT/test` from the host.",
			},
			Run: func(s *State, args []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if b.Stack == nil {
						return fail("no-overlay", "box %s has no overlay", b.Name)
					}
					for _, c := range b.Stack.Changes {
						if c.Kind == rootfs.Created && !c.Dir && (len(args) == 0 || c.Path == args[0]) {
							return pass("box %s: + %s, in the upper dir %s", b.Name, step.Escape(c.Path), b.Stack.Upper.Dir) // a file the box named
						}
					}
					want := "a new file"
					if len(args) == 1 {
						want = args[0]
					}
					return fail("not-created", "box %s: its upper dir holds no %s", b.Name, want)
				})
			},
		},
		&Check{
			Name: "copied-up", Usage: "copied-up", Summary: "a file of a lower layer was changed in a box, so overlayfs copied it up",
			Findings: map[string]string{
				"no-overlay": noOverlay,
				"no-copy-up": "No file of the layers has changed yet: change one in the box, e.g. `exec sh -c 'echo changed >> /etc/motd'`.",
			},
			Run: upperChange(rootfs.CopiedUp, "no-copy-up", "copied up from %s"),
		},
		&Check{
			Name: "whiteout", Usage: "whiteout", Summary: "a file of a lower layer was deleted in a box: the upper dir holds a whiteout",
			Findings: map[string]string{
				"no-overlay":  noOverlay,
				"no-whiteout": "Nothing of the layers has been deleted yet: `exec rm /etc/issue`.",
			},
			Run: upperChange(rootfs.Whiteout, "no-whiteout", "a whiteout hides %s's"),
		},
		&Check{
			Name: "shared-base", Usage: "shared-base", Summary: "two boxes stack the same layer, each with an upper dir of its own, and each has pivoted onto its overlay",
			Findings: map[string]string{
				"one-overlay":     "Only one box has an overlay: make a second box with its own mount namespace and stack the same layer: `new {db}`, `unshare mnt`, `mount overlay base`.",
				"no-shared-layer": "Your boxes' overlays have no layer in common: stack the same one (base) in both.",
				"not-pivoted":     "The box stacks the same layers, but its root is still the host's, so `exec` in it reads the host's files: `pivot_root` in the box stepbox names.",
			},
			Run: runSharedBase,
		},
		&Check{
			Name: "chrooted", Usage: "chrooted", Summary: "a box's root directory is its overlay, by chroot: a directory of the mount namespace, not its root",
			Findings: map[string]string{
				"no-overlay":   noOverlay,
				"pivoted":      "This box used pivot_root, which the next steps are about. For this one make a box that uses `chroot`.",
				"not-chrooted": "The box's root is still the host's: `chroot`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					switch {
					case b.Stack == nil:
						return fail("no-overlay", "box %s has no overlay", b.Name)
					case b.Root.Link != "/":
						return pass("box %s: its root is %s, a directory the host can still name", b.Name, b.Root.Link)
					case b.rootIsOverlay():
						return fail("pivoted", "box %s: its root is the root of its mount namespace, after pivot_root", b.Name)
					}
					return fail("not-chrooted", "box %s: its root is still the host's /", b.Name)
				})
			},
		},
		&Check{
			Name: "pivoted", Usage: "pivoted", Summary: "a box's overlay is the root of its mount namespace, and the host's root is gone from it",
			Findings: map[string]string{
				"no-overlay":  noOverlay,
				"chrooted":    "This box is chrooted, and a chroot cannot be undone: make a new box (`new {cell}`, after `rm {cell}` if {cell} is the chrooted one; `unshare mnt`, `mount overlay base`) and use `pivot_root`.",
				"not-pivoted": "The overlay is mounted, but the box's root is still the host's: `pivot_root`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					switch {
					case b.Stack == nil:
						return fail("no-overlay", "box %s has no overlay", b.Name)
					case b.Root.Link != "/":
						return fail("chrooted", "box %s: chrooted into %s", b.Name, b.Root.Link)
					case !b.rootIsOverlay():
						return fail("not-pivoted", "box %s: / is still %s", b.Name, b.rootFSType())
					case b.holdsHostRoot():
						return fail("not-pivoted", "box %s: the host's root is still mounted in its namespace", b.Name)
					}
					return pass("box %s: / is the overlay, and the host's root is detached from its mount namespace", b.Name)
				})
			},
		},
		&Check{
			Name: "proc-mounted", Usage: "proc-mounted", Summary: "a box with a root of its own has a proc filesystem at /proc",
			Findings: map[string]string{
				"not-pivoted": "Give a box a root of its own first: `pivot_root`.",
				"no-proc":     "The box's /proc is an empty directory of the base layer: `mount proc`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if r := b.needPivoted(); !r.Pass {
						return r
					}
					if !b.mountedAt("/proc", "proc") {
						return fail("no-proc", "box %s: nothing mounted at /proc", b.Name)
					}
					return pass("box %s: /proc is mounted and lists %s", b.Name, step.Count(len(b.Root.Procs), "process"))
				})
			},
		},
		&Check{
			Name: "own-proc", Usage: "own-proc", Summary: "a box's /proc lists only the processes of its own PID namespace",
			Findings: map[string]string{
				"no-pid-ns":   "A /proc shows the PID namespace of whoever mounted it. This box has none of its own, and `unshare pid` must come before `pivot_root`: make a new box with `unshare mnt pid` first.",
				"not-pivoted": "Give the box a root of its own: `pivot_root` (it mounts /proc from inside the box's PID namespace).",
				"no-proc":     "The box's /proc is empty: `mount proc`.",
				"host-proc":   "The box's /proc was mounted from the host's PID namespace, so it lists every process on the host. Make a box with its own PID namespace before pivot_root.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if r := b.needPivoted(); !r.Pass {
						return r
					}
					// Without a PID namespace no /proc can be the box's own:
					// say so before anything about mounting one.
					if !b.ownNamespace("pid") {
						return fail("no-pid-ns", "box %s: no PID namespace of its own; its /proc lists %s", b.Name, step.Count(len(b.Root.Procs), "process"))
					}
					if !b.mountedAt("/proc", "proc") {
						return fail("no-proc", "box %s: nothing mounted at /proc", b.Name)
					}
					own := len(boxProcesses(s.Tree, b.Name))
					switch {
					case len(b.Root.Procs) > own || !slices.Contains(b.Root.Procs, 1):
						return fail("host-proc", "box %s: its /proc lists %s; it runs %d", b.Name, step.Count(len(b.Root.Procs), "process"), own)
					}
					return pass("box %s: its /proc lists %s, PIDs %v, its own", b.Name, step.Count(len(b.Root.Procs), "process"), b.Root.Procs)
				})
			},
		},
		&Check{
			Name: "dev-sys", Usage: "dev-sys", Summary: "a box with a root of its own has /dev and /sys mounted",
			Findings: map[string]string{
				"not-pivoted": "Give a box a root of its own first: `pivot_root`.",
				"no-dev":      "The box's /dev is an empty directory: `mount dev` makes a small one (null, zero, tty, pts…).",
				"no-sys":      "The box's /sys is empty: `mount sys`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeBoxes(s, func(b *BoxState) Result {
					if r := b.needPivoted(); !r.Pass {
						return r
					}
					if !b.mountedAt("/dev", "") {
						return fail("no-dev", "box %s: nothing mounted at /dev", b.Name)
					}
					if !b.mountedAt("/sys", "sysfs") {
						return fail("no-sys", "box %s: nothing mounted at /sys", b.Name)
					}
					return pass("box %s: /dev and /sys are mounted", b.Name)
				})
			},
		},
	)
}

// upperChange passes when a box's upper dir holds a non-directory change
// of kind.
func upperChange(kind rootfs.ChangeKind, finding, what string) func(s *State, _ []string) Result {
	return func(s *State, _ []string) Result {
		return judgeBoxes(s, func(b *BoxState) Result {
			if b.Stack == nil {
				return fail("no-overlay", "box %s has no overlay", b.Name)
			}
			for _, c := range b.Stack.Changes {
				if c.Kind == kind && !c.Dir {
					return pass("box %s: %s %s, "+what, b.Name, c.Kind, step.Escape(c.Path), c.Below)
				}
			}
			return fail(finding, "box %s: no %s in its upper dir", b.Name, kind)
		})
	}
}

func runSharedBase(s *State, _ []string) Result {
	if r := s.noBox(); r != nil {
		return *r
	}
	var stacked []*BoxState
	for _, b := range s.live() {
		if b.Stack != nil {
			stacked = append(stacked, b)
		}
	}
	if len(stacked) < 2 {
		return fail("one-overlay", "%s with an overlay", step.Count(len(stacked), "box"))
	}
	// Two boxes are compared by what runs in them, so both must have the
	// overlay as their root; stacked is in order, the current box first,
	// so it is the one named when neither has.
	var unpivoted *Result
	for i, a := range stacked {
		for _, b := range stacked[i+1:] {
			if a.Stack.Upper.Dir == b.Stack.Upper.Dir {
				continue
			}
			layer := sharedLayer(a, b)
			if layer == nil {
				continue
			}
			for _, x := range []*BoxState{a, b} {
				if !x.needPivoted().Pass && unpivoted == nil {
					r := fail("not-pivoted", "box %s stacks %s as box %s does, but its root is still the host's: `exec` there reads the host's files", x.Name, layer.Name, otherBox(x, a, b).Name)
					r.Box = x.Name
					unpivoted = &r
				}
			}
			if a.needPivoted().Pass && b.needPivoted().Pass {
				return pass("boxes %s and %s stack the same layer %s (%s), each with its own upper dir, each as its root", a.Name, b.Name, layer.Name, layer.Dir)
			}
		}
	}
	if unpivoted != nil {
		return *unpivoted
	}
	return fail("no-shared-layer", "no two boxes stack the same layer")
}

// sharedLayer is a lower layer both boxes stack, or nil.
func sharedLayer(a, b *BoxState) *rootfs.LayerInfo {
	for i, la := range a.Stack.Lowers {
		for _, lb := range b.Stack.Lowers {
			if la.Dir == lb.Dir {
				return &a.Stack.Lowers[i]
			}
		}
	}
	return nil
}

// otherBox is whichever of a and b is not x.
func otherBox(x, a, b *BoxState) *BoxState {
	if x == a {
		return b
	}
	return a
}

// needPivoted passes when the box's root is an overlay of its own.
func (b *BoxState) needPivoted() Result {
	if b.Stack == nil || b.Root.Link != "/" || !b.rootIsOverlay() {
		return fail("not-pivoted", "box %s has no root of its own", b.Name)
	}
	return Result{Pass: true}
}

// overlayMount is the box's overlay in its mount table, or nil.
func (b *BoxState) overlayMount() *rootfs.Mount {
	for i, m := range b.Mounts.Mounts {
		if m.FSType == "overlay" {
			return &b.Mounts.Mounts[i]
		}
	}
	return nil
}

// rootMount is the last mount on "/" of a table: the one the process sees.
func rootMount(t rootfs.MountTable) *rootfs.Mount {
	var root *rootfs.Mount
	for i, m := range t.Mounts {
		if m.Point == "/" {
			root = &t.Mounts[i]
		}
	}
	return root
}

func (b *BoxState) rootIsOverlay() bool {
	m := rootMount(b.Mounts)
	return m != nil && m.FSType == "overlay"
}

func (b *BoxState) rootFSType() string {
	if m := rootMount(b.Mounts); m != nil {
		return "the host's " + m.FSType
	}
	return "the host's"
}

// holdsHostRoot reports whether the host's root filesystem is still
// mounted, as a whole, in the box's mount table.
func (b *BoxState) holdsHostRoot() bool {
	host := rootMount(b.HostMounts)
	if host == nil {
		return false
	}
	for _, m := range b.Mounts.Mounts {
		if m.Dev == host.Dev && m.Root == host.Root {
			return true
		}
	}
	return false
}

// mountedAt reports whether something (of fstype, unless "") is mounted on point.
func (b *BoxState) mountedAt(point, fstype string) bool {
	for _, m := range b.Mounts.Mounts {
		if m.Point == point && (fstype == "" || m.FSType == fstype) {
			return true
		}
	}
	return false
}

// origin is the layer the box's merged view takes p from.
func (b *BoxState) origin(p string) string {
	for _, o := range b.Stack.Files {
		if o.Path == p {
			return o.Layer
		}
	}
	return "no layer"
}

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
