package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/prometheus/procfs"
)

// Box is what a snapshot shows of one box.
type Box struct {
	Name  string
	Group *Group // nil before `cgroup new`
	PID   int    // host PID of the box's process; 0 when it has none
	// OwnView is /proc/self/cgroup as read inside the box: after
	// `unshare cgroup` its paths start at the box's own cgroup. Only the
	// box process can read it; nil when it was not read.
	OwnView []procfs.Cgroup
}

// Snapshot is the cgroup panel's input: stepbox's tree with live usage,
// and where one box's process sits.
type Snapshot struct {
	Mode     Mode            `json:"mode"`
	Parent   Node            `json:"parent"`
	Box      string          `json:"box,omitempty"`
	BoxGroup string          `json:"box_group,omitempty"` // name of the box's cgroup
	BoxPID   int             `json:"box_pid,omitempty"`
	HostView []procfs.Cgroup `json:"host_view,omitempty"` // /proc/BoxPID/cgroup, read by the session
	OwnView  []procfs.Cgroup `json:"own_view,omitempty"`  // /proc/self/cgroup, read inside the box
	Taken    time.Time       `json:"taken"`
}

// Node is one cgroup of the tree, with what it holds and uses.
type Node struct {
	Group
	Procs []int `json:"procs,omitempty"`
	Stats Stats `json:"stats"`
	// CPUs is the CPU time used since the previous snapshot per second of
	// wall time (1 = one core busy); Unknown without a previous snapshot.
	CPUs     float64 `json:"cpus"`
	Children []Node  `json:"children,omitempty"`
	// Unread is how many child cgroups were left unread: a box with
	// the rights to mkdir in its cgroup can make thousands (ut29 F7),
	// and a snapshot reads at most TreeChildren of a node, TreeNodes in
	// all and TreeDepth levels below the parent.
	Unread int `json:"unread,omitempty"`
}

// The bounds of one snapshot's walk. stepbox's own cgroups (the parent
// and a box's cgroup under it) are all a learner makes; what lies past
// these bounds is a box's own making and is counted, not read.
const (
	TreeChildren = 32
	TreeNodes    = 128
	TreeDepth    = 8
)

// Unknown marks a rate that needs two snapshots.
const Unknown = -1.0

// TakeSnapshot reads the tree under parent and box's membership. prev, the
// previous snapshot or nil, turns CPU time into a rate.
func TakeSnapshot(h Hierarchy, parent *Group, box Box, prev *Snapshot) (Snapshot, error) {
	s := Snapshot{Mode: h.Mode(), Box: box.Name, BoxPID: box.PID, OwnView: box.OwnView, Taken: time.Now()}
	if box.Group != nil {
		s.BoxGroup = box.Group.Name
	}
	if parent == nil {
		return s, fmt.Errorf("cgroup show: %w", ErrNoGroup)
	}
	var err error
	budget := TreeNodes
	if s.Parent, err = node(h, *parent, s.BoxGroup, 0, &budget); err != nil {
		return s, fmt.Errorf("cgroup show: %w", err)
	}
	if box.PID > 0 {
		// A box whose process has died (the OOM killer took its init)
		// still has its cgroups and their counters, which are what a
		// learner looks at next: show them without the membership.
		if s.HostView, err = h.Membership(box.PID); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return s, fmt.Errorf("cgroup show: %w", err)
		}
	}
	var before map[string]int64
	if prev != nil {
		before = map[string]int64{}
		cpuTimes(prev.Parent, before)
	}
	rates(&s.Parent, before, s.Taken.Sub(prevTaken(prev)))
	return s, nil
}

func prevTaken(prev *Snapshot) time.Time {
	if prev == nil {
		return time.Time{}
	}
	return prev.Taken
}

// node reads cgroup g and, within budget (nodes left to read) and
// TreeDepth, its children; keep, the current box's cgroup, is read
// whatever its place among its siblings, so a box's own mkdirs cannot
// crowd it out.
func node(h Hierarchy, g Group, keep string, depth int, budget *int) (Node, error) {
	*budget--
	n := Node{Group: g, CPUs: Unknown}
	var err error
	if n.Procs, err = h.Procs(&g); err != nil {
		return n, err
	}
	if n.Stats, err = h.Stats(&g); err != nil {
		return n, err
	}
	var names []string
	for _, d := range g.Dirs {
		sub, err := subdirs(d.Path)
		if err != nil {
			return n, err
		}
		names = append(names, sub...)
	}
	slices.Sort(names)
	// A box's tracking cgroup and the session's leaf of its scope are
	// stepbox's, not the learner's: the tree shows the cgroups the
	// learner made (Box.Tracked has the first).
	names = slices.DeleteFunc(names, func(n string) bool { return IsTrack(n) || n == SessionLeaf })
	for i, name := range slices.Compact(names) {
		if depth+1 > TreeDepth || ((name != keep || depth > 0) && (i >= TreeChildren || *budget <= 0)) {
			n.Unread++
			continue
		}
		c := g.child(name)
		c.Dirs = slices.DeleteFunc(c.Dirs, func(d Dir) bool {
			_, err := os.Stat(d.Path)
			return err != nil
		})
		child, err := node(h, *c, keep, depth+1, budget)
		if err != nil {
			return n, err
		}
		n.Children = append(n.Children, child)
	}
	return n, nil
}

func cpuTimes(n Node, into map[string]int64) {
	if n.Stats.CPU != nil && len(n.Dirs) > 0 {
		into[n.Dirs[0].Path] = n.Stats.CPU.UsageUsec
	}
	for _, c := range n.Children {
		cpuTimes(c, into)
	}
}

func rates(n *Node, before map[string]int64, wall time.Duration) {
	if was, ok := before[firstPath(n)]; ok && n.Stats.CPU != nil && wall > 0 {
		n.CPUs = float64(n.Stats.CPU.UsageUsec-was) / float64(wall.Microseconds())
	}
	for i := range n.Children {
		rates(&n.Children[i], before, wall)
	}
}

func firstPath(n *Node) string {
	if len(n.Dirs) == 0 {
		return ""
	}
	return n.Dirs[0].Path
}
