package primitives

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"
)

// track puts the box process pid, before it runs anything, into the box's
// tracking cgroup (cgroups/track.go): stepbox's own, not the learner's,
// so `cgroup new` still makes the box's first cgroup of its own.
// Teardown ends every process in it, whatever it did with its
// environment or its parent. Where the host gives stepbox no cgroup it
// may write (no cgroup tree, a read-only one, no legal place), the box
// still starts, and the step says how its processes are found instead.
func (b *Box) track(st *step.Step, pid int) {
	g, err := b.trackIn(pid)
	if err != nil {
		st.Notes = append(st.Notes, "stepbox cannot track this box's processes by cgroup ("+err.Error()+"): teardown finds them by the markers in their environment, which a process can clear")
		return
	}
	b.mu.Lock()
	b.tracked = g
	b.mu.Unlock()
	var where []string
	for _, d := range append(slices.Clone(g.Dirs), g.Track...) {
		where = append(where, d.Path)
	}
	st.Notes = append(st.Notes, fmt.Sprintf("stepbox keeps the box's processes in %s, a cgroup of its own (%s): teardown ends everything in it; "+
		"the box's own cgroup comes with `cgroup new`; all boxes together may hold %d tasks (pids.max of stepbox's parent)",
		g.Name, strings.Join(where, ", "), cgroups.SessionPidsMax))
}

func (b *Box) trackIn(pid int) (*cgroups.Group, error) {
	parent, err := b.session.cgroupParent(&step.Step{})
	if err != nil {
		return nil, err
	}
	g, err := cgroups.TrackGroup(parent, b.Name, b.ID)
	if err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(g)
	if err := b.ledger.Add(Resource{Kind: ResCgroup, Group: raw, Note: "stepbox's tracking cgroup of the box"}); err != nil {
		return nil, err
	}
	if _, err := cgroups.MakeTrack(g, pid); err != nil {
		return nil, err
	}
	return g, nil
}

// Tracked is the box's tracking cgroup, stepbox's own; nil where the host
// gave none.
func (b *Box) Tracked() *cgroups.Group {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tracked
}

// killCgroup ends every process in a ResCgroup ledger line's cgroup, once
// the line is shown to be the session's (ledgerCgroupOwn), and names the
// processes that survived.
func killCgroup(r Resource, session string) error {
	g, err := ledgerGroup(r, session)
	if g == nil || err != nil {
		return err
	}
	left, err := cgroups.Kill(g)
	if len(left) > 0 {
		var names []string
		for _, pid := range left {
			names = append(names, strconv.Itoa(pid)+" ("+commOf(pid)+")")
		}
		return errors.Join(fmt.Errorf("cgroup %s: %s still there after SIGKILL, none of them gone for 5 s (stuck in the kernel): %s", g.Name, step.Count(len(left), "process"), strings.Join(names, ", ")), err)
	}
	return err
}

// commOf is a process's command name, escaped for the terminal: a box
// names its processes as it likes.
func commOf(pid int) string {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return "gone"
	}
	c, err := p.Comm()
	if err != nil {
		return "gone"
	}
	return strconv.Quote(c)
}

// boxNamespaces are the namespaces of the box's processes pids that are
// not the session's own, by /proc/PID/ns name, as device and inode. Each
// is held open (pinned) until release: a namespace's inode number is
// given to the next namespace made anywhere on the host once the last
// reference goes, and escapees must not take a stranger's process in a
// new namespace for one of the box's.
func boxNamespaces(pids ...int) (ns map[string]nsID, release func()) {
	own := map[string]nsID{}
	out := map[string]nsID{}
	var pins []*os.File
	for _, t := range []string{"mnt", "pid", "net", "uts", "ipc", "cgroup", "user", "time"} {
		self, err := nsOf("self", t)
		if err != nil {
			continue
		}
		own[t] = self
		for _, pid := range pids {
			if pid <= 0 {
				continue
			}
			f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/" + t)
			if err != nil {
				continue
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil || (nsID{st.Dev, st.Ino}) == self {
				f.Close()
				continue
			}
			out[t] = nsID{st.Dev, st.Ino}
			pins = append(pins, f)
		}
	}
	var once sync.Once
	return out, func() { once.Do(func() { closeAll(pins) }) }
}

type nsID struct{ dev, ino uint64 }

func nsOf(pid, t string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+pid+"/ns/"+t, &st); err != nil {
		return nsID{}, err
	}
	return nsID{st.Dev, st.Ino}, nil
}

// escapees ends the processes still in one of the box's own namespaces
// once its cgroups and marked processes are gone, and names them: only a
// process that moved itself out of stepbox's tracking cgroup (which needs
// write access to the cgroup tree: a box with every privilege of host
// root) and cleared its markers gets this far. A box in the host's
// namespaces leaves nothing to find them by.
func escapees(box string, ns map[string]nsID) error {
	if len(ns) == 0 {
		return nil
	}
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var found []pidStart
	var names []string
	for _, p := range procs {
		if p.PID == self {
			continue
		}
		for t, id := range ns {
			if got, err := nsOf(strconv.Itoa(p.PID), t); err == nil && got == id {
				st, err := p.Stat()
				if err != nil || st.State == "Z" {
					break
				}
				found = append(found, pidStart{p.PID, st.Starttime})
				names = append(names, fmt.Sprintf("%d (%s, in the box's %s namespace)", p.PID, commOf(p.PID), t))
				break
			}
		}
	}
	if len(found) == 0 {
		return nil
	}
	kerr := killAndWait(found)
	return errors.Join(fmt.Errorf("box %s: %s had left stepbox's tracking cgroup (a box with the rights of host root can write its PIDs to another cgroup) and carried no marker; found by namespace and ended: %s",
		box, step.Count(len(found), "process"), strings.Join(names, ", ")), kerr)
}
