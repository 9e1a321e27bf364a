package lessons

import (
	"fmt"
	"slices"
	"stepbox/primitives/step"
	"strings"

	"stepbox/primitives/cgroups"
)

// Checks on cgroups, through the cgroup snapshot: the same on cgroup v1
// (a tree per controller) and v2 (one tree).

var (
	noCgroup    = "The box has no cgroup yet: `cgroup new`."
	notAttached = "The box's processes are not in its cgroup, so its limits apply to nothing: `cgroup attach`."
)

func init() {
	register(
		&Check{
			Name: "cgroup-made", Usage: "cgroup-made", Summary: "a box has a cgroup of its own",
			Findings: map[string]string{"no-cgroup": noCgroup},
			Run: func(s *State, _ []string) Result {
				return judgeCgroup(s, func(b *BoxState, n *cgroups.Node) Result {
					return pass("box %s has cgroup %s: %s", b.Name, n.Name, dirList(n))
				})
			},
		},
		&Check{
			Name: "cgroup-attached", Usage: "cgroup-attached", Summary: "a box's process is in its cgroup",
			Findings: map[string]string{"no-cgroup": noCgroup, "not-attached": notAttached},
			Run: func(s *State, _ []string) Result {
				return judgeCgroup(s, func(b *BoxState, n *cgroups.Node) Result {
					if r := attached(b, n); !r.Pass {
						return r
					}
					return pass("box %s: PID %d is in cgroup %s (cgroup.procs: %v)", b.Name, b.Cgroup.BoxPID, n.Name, n.Procs)
				})
			},
		},
		&Check{
			Name: "pids-limit", Usage: "pids-limit", Summary: "a box's cgroup has a pids limit, and the kernel has refused a fork at it",
			Findings: map[string]string{
				"no-cgroup": noCgroup, "not-attached": notAttached,
				"no-limit":   "The box's cgroup has no pids limit: `cgroup limit pids 20`.",
				"no-refusal": "The limit has not refused a fork yet: start more processes than it allows, e.g. `-exec sh -c 'for i in $(seq 40); do sleep 1 & done; wait'`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeCgroup(s, func(b *BoxState, n *cgroups.Node) Result {
					p := n.Stats.Pids
					switch {
					case p == nil || p.Max == cgroups.Unlimited:
						return fail("no-limit", "box %s: pids.max is max", b.Name)
					case !attached(b, n).Pass:
						return attached(b, n)
					case p.Refused == 0:
						return fail("no-refusal", "box %s: pids %d of %d, no fork refused", b.Name, p.Current, p.Max)
					}
					return pass("box %s: pids.max %d; the kernel refused %s", b.Name, p.Max, step.Count(int(p.Refused), "fork"))
				})
			},
		},
		&Check{
			Name: "memory-limit", Usage: "memory-limit", Summary: "a box's cgroup has a memory limit, and the box has run into it",
			Findings: map[string]string{
				"no-cgroup": noCgroup, "not-attached": notAttached,
				"no-limit": "The box's cgroup has no memory limit: `cgroup limit memory 32M`.",
				"not-hit":  "Nothing in the box has needed more memory than the limit yet: `-exec sh -c 'x=$(head -c 64M /dev/zero | tr \"\\0\" x)'` asks for 64M.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeCgroup(s, func(b *BoxState, n *cgroups.Node) Result {
					m := n.Stats.Memory
					switch {
					case m == nil || m.Max == cgroups.Unlimited:
						return fail("no-limit", "box %s: no memory limit", b.Name)
					case !attached(b, n).Pass:
						return attached(b, n)
					case m.LimitHits == 0 && m.OOMKill == 0:
						return fail("not-hit", "box %s: %s used of %s, limit never reached", b.Name, bytes(m.Current), bytes(m.Max))
					}
					return pass("box %s: %s", b.Name, memoryHits(m))
				})
			},
		},
		&Check{
			Name: "cpu-limit", Usage: "cpu-limit", Summary: "a box's cgroup has a CPU quota, and the kernel has throttled the box at it",
			Findings: map[string]string{
				"no-cgroup": noCgroup, "not-attached": notAttached,
				"no-limit":      "The box's cgroup has no CPU quota: `cgroup limit cpu 20%`.",
				"not-throttled": "Nothing in the box has used its quota yet: keep a CPU busy for a while, e.g. `-exec timeout 2 sh -c 'while :; do :; done'`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeCgroup(s, func(b *BoxState, n *cgroups.Node) Result {
					c := n.Stats.CPU
					switch {
					case c == nil || c.QuotaUsec == cgroups.Unlimited:
						return fail("no-limit", "box %s: no CPU quota", b.Name)
					case !attached(b, n).Pass:
						return attached(b, n)
					case c.Throttled == 0:
						return fail("not-throttled", "box %s: quota %dµs per %dµs, never throttled", b.Name, c.QuotaUsec, c.PeriodUsec)
					}
					return pass("box %s: quota %dµs per %dµs period; throttled in %d of %s", b.Name, c.QuotaUsec, c.PeriodUsec, c.Throttled, step.Count(int(c.Periods), "period"))
				})
			},
		},
		&Check{
			Name: "sibling-cgroups", Usage: "sibling-cgroups", Summary: "two boxes each have a cgroup of their own, side by side, with their processes in them",
			Findings: map[string]string{
				"one-cgroup": "One box has a cgroup. Give a second box its own: `new {db}`, `unshare pid`, `cgroup new`, `cgroup attach`.",
				"empty":      "A box's cgroup holds none of its processes: `use` that box and `cgroup attach`.",
			},
			Run: runSiblingCgroups,
		},
		&Check{
			Name: "contained", Usage: "contained", Summary: "every process of a box is in its cgroup, and the cgroup limits pids or memory",
			Findings: map[string]string{
				"no-cgroup": noCgroup, "not-attached": notAttached,
				"no-limit": "The box's cgroup limits nothing yet: `cgroup limit pids 64`, `cgroup limit memory 64M`.",
				"outside":  "A process of the box is outside its cgroup (it was started before `cgroup attach` moved the others): `cgroup attach` again.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeCgroup(s, func(b *BoxState, n *cgroups.Node) Result {
					if (n.Stats.Pids == nil || n.Stats.Pids.Max == cgroups.Unlimited) && (n.Stats.Memory == nil || n.Stats.Memory.Max == cgroups.Unlimited) {
						return fail("no-limit", "box %s: cgroup %s has no pids or memory limit", b.Name, n.Name)
					}
					if r := attached(b, n); !r.Pass {
						return r
					}
					for _, p := range boxProcesses(s.Tree, b.Name) {
						if p.Role == "box process" && b.Namespaces.InitPID != 0 {
							continue // it only waits for PID 1 and stays out on purpose
						}
						if !slices.Contains(n.Procs, p.PID) {
							return fail("outside", "box %s: %s (PID %d) is outside cgroup %s", b.Name, step.Escape(p.Comm), p.PID, n.Name) // prctl(PR_SET_NAME) names it
						}
					}
					return pass("box %s: cgroup %s holds PIDs %v, the box's every process", b.Name, n.Name, n.Procs)
				})
			},
		},
		&Check{
			Name: "cgroup-root", Usage: "cgroup-root", Summary: "a box has its own cgroup namespace, rooted at its cgroup: inside, its cgroup is /",
			Findings: map[string]string{
				"no-cgroup": noCgroup, "not-attached": notAttached,
				"shares-cgroupns": "The box sees the host's cgroup paths: `unshare cgroup` (after `cgroup attach`).",
				"unshared-early":  "The box's cgroup namespace was made before it moved into its cgroup, so its root is where the box was then. Make a new box: `cgroup new`, `cgroup attach`, and only then `unshare cgroup`.",
			},
			Run: func(s *State, _ []string) Result {
				return judgeCgroup(s, func(b *BoxState, n *cgroups.Node) Result {
					if r := attached(b, n); !r.Pass {
						return r
					}
					if !b.ownNamespace("cgroup") {
						return fail("shares-cgroupns", "box %s: cgroup namespace is the host's", b.Name)
					}
					for _, host := range b.Cgroup.HostView {
						for _, own := range b.CgroupView {
							if own.HierarchyID == host.HierarchyID && strings.HasSuffix(host.Path, "/"+n.Name) {
								if own.Path != "/" {
									return fail("unshared-early", "box %s: inside, its cgroup is %s", b.Name, own.Path)
								}
								return pass("box %s: the host sees %s, the box sees /", b.Name, host.Path)
							}
						}
					}
					return fail("unshared-early", "box %s: its own view of /proc/self/cgroup does not start at its cgroup", b.Name)
				})
			},
		},
	)
}

// judgeCgroup runs fn on each box that has a cgroup, with the cgroup's
// node of the snapshot.
func judgeCgroup(s *State, fn func(b *BoxState, n *cgroups.Node) Result) Result {
	return judgeBoxes(s, func(b *BoxState) Result {
		n := b.cgroupNode()
		if n == nil {
			return fail("no-cgroup", "box %s has no cgroup", b.Name)
		}
		return fn(b, n)
	})
}

// cgroupNode finds the box's cgroup in its snapshot's tree.
func (b *BoxState) cgroupNode() *cgroups.Node {
	if b.Cgroup == nil || b.Cgroup.BoxGroup == "" {
		return nil
	}
	return findNode(&b.Cgroup.Parent, b.Cgroup.BoxGroup)
}

func findNode(n *cgroups.Node, name string) *cgroups.Node {
	if n.Name == name {
		return n
	}
	for i := range n.Children {
		if f := findNode(&n.Children[i], name); f != nil {
			return f
		}
	}
	return nil
}

// attached passes when the box's command process is in its cgroup.
func attached(b *BoxState, n *cgroups.Node) Result {
	if !slices.Contains(n.Procs, b.Cgroup.BoxPID) {
		return fail("not-attached", "box %s: PID %d is not in cgroup %s (it holds %v)", b.Name, b.Cgroup.BoxPID, n.Name, n.Procs)
	}
	return Result{Pass: true}
}

func runSiblingCgroups(s *State, _ []string) Result {
	if r := s.noBox(); r != nil {
		return *r
	}
	var full []string
	cgrouped := 0
	var empty *Result
	for _, b := range s.live() {
		n := b.cgroupNode()
		if n == nil {
			continue
		}
		cgrouped++
		if len(n.Procs) == 0 {
			if empty == nil {
				r := fail("empty", "box %s: cgroup %s holds no process", b.Name, n.Name)
				r.Box = b.Name
				empty = &r
			}
			continue
		}
		full = append(full, fmt.Sprintf("%s in %s", b.Name, n.Name))
	}
	switch {
	case len(full) >= 2:
		return pass("side by side under stepbox's parent: %s", strings.Join(full, ", "))
	case cgrouped < 2:
		return fail("one-cgroup", "%s with a cgroup", step.Count(cgrouped, "box"))
	case empty != nil:
		return *empty
	}
	return fail("one-cgroup", "%s with a cgroup", step.Count(cgrouped, "box"))
}

// memoryHits says what the box's memory limit did, leaving out a counter
// that stayed at 0: cgroup v1 can count an OOM kill with memory.failcnt
// still 0, and "reached 0 times" beside it would contradict it.
func memoryHits(m *cgroups.MemoryStats) string {
	limit := "memory limit " + bytes(m.Max)
	switch {
	case m.LimitHits > 0 && m.OOMKill > 0:
		return fmt.Sprintf("%s reached %s; the OOM killer killed %s", limit, times(m.LimitHits), step.Count(int(m.OOMKill), "process"))
	case m.LimitHits > 0:
		return fmt.Sprintf("%s reached %s", limit, times(m.LimitHits))
	}
	return fmt.Sprintf("at its memory limit of %s, the OOM killer killed %s", bytes(m.Max), step.Count(int(m.OOMKill), "process"))
}

func dirList(n *cgroups.Node) string {
	var dirs []string
	for _, d := range n.Dirs {
		dirs = append(dirs, d.Path)
	}
	if len(dirs) > 2 {
		return fmt.Sprintf("%s and %d more directories", dirs[0], len(dirs)-1)
	}
	return strings.Join(dirs, ", ")
}

// bytes prints a byte count the way the cgroup panel does.
func bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// times is "once", "twice", "N times".
func times(n int64) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return step.Count(int(n), "time")
}
