package primitives

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"

	"stepbox/primitives/cgroups"
	"stepbox/primitives/step"

	"golang.org/x/sys/unix"
)

// track puts the box process pid, before it runs anything, into the box's
// tracking cgroup (cgroups/track.go): stepbox's own, not the learner's,
// so `cgroup new` still makes the box's first cgroup of its own.
// Teardown ends every process in it, whatever it did with its
// environment or its parent. Where the host gives stepbox no cgroup it
// may write (no cgroup tree, a read-only one, no legal place), the box
// still starts, and the step says how its processes are found instead.
// Rootless, where no cgroup is delegated to the uid, none is tried: every
// box is in a user namespace of its own, which teardown finds them by
// (escapees: the box's, or one below it; none leaves it). A cgroup that
// is there already is not stepbox's to use (ut30 F7: another session's
// parent, or one a box planted): the box does not start, and its undo
// leaves that cgroup and what is in it alone (ut31 F6).
func (b *Box) track(st *step.Step, pid int) error {
	var g *cgroups.Group
	err := ErrNoCgroupRootless
	if !Rootless() || rootlessCgroups().OK {
		g, err = b.trackIn(pid)
	}
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("new %s: stepbox's tracking cgroup for it could not be made fresh: %w; a cgroup of that name that stepbox did not just make is not its own to put the box in, so the box is not started", b.Name, err)
	}
	if err != nil {
		how := "by the markers in their environment, which a process can clear"
		if Rootless() {
			how = "by their user namespace, the box's or one a process of it made below it (no process can leave it for the host's), and by the markers in their environment"
		}
		st.Notes = append(st.Notes, "stepbox cannot track this box's processes by cgroup ("+err.Error()+"): teardown finds them "+how)
		return nil
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
	return nil
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
	made, _, err := cgroups.MakeTrack(g, pid)
	if err != nil {
		// The line names every directory of g, written before any was
		// made; one that was there already (EEXIST: another's, a box's
		// plant, with whatever processes were put in it) is not the box's
		// to empty or remove, nor is one never tried after it (ut31 F6).
		for _, d := range append(slices.Clone(g.Dirs), g.Track...) {
			if !slices.Contains(made, d.Path) {
				err = errors.Join(err, b.ledger.Add(Resource{Kind: ResNotMade, Path: d.Path, Note: "not made by this box's `new`: teardown leaves it alone"}))
			}
		}
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
// the line is shown to be the session's (ledgerCgroupOwn), names the
// processes that survived, and returns those it saw end.
func killCgroup(r Resource, session string) ([]int, error) {
	g, _, err := ledgerGroup(r, session) // what it drops removeCgroup says
	if g == nil || err != nil {
		return nil, err
	}
	ended, left, err := cgroups.Kill(g)
	if len(left) > 0 {
		var names []string
		for _, pid := range left {
			names = append(names, strconv.Itoa(pid)+" ("+commOf(pid)+")")
		}
		return ended, errors.Join(fmt.Errorf("cgroup %s: %s still there after SIGKILL, none of them gone for 5 s (stuck in the kernel): %s", g.Name, step.Count(len(left), "process"), strings.Join(names, ", ")), err)
	}
	return ended, err
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

// boxCgroups is where a process of the box is among the box's cgroups,
// as the kernel has it (/proc/PID/cgroup): the box's own, from `cgroup
// new`, holds it only once `cgroup attach` moved it there; stepbox's
// tracking cgroup holds it from `new` (on a hybrid host, its cgroup2 tree
// keeps it after attach too, which writes only the v1 trees).
type boxCgroups struct {
	own, tracked     *cgroups.Group // nil where the box has none
	ownIn, trackedIn []cgroups.Dir  // their directories the process is in
}

// cgroupsOf reads where process pid is among the box's cgroups.
func (b *Box) cgroupsOf(pid int) boxCgroups {
	b.mu.Lock()
	c := boxCgroups{own: b.cgroup, tracked: b.tracked}
	b.mu.Unlock()
	in, err := readProcCgroups(pid)
	if err != nil {
		return c
	}
	c.ownIn, c.trackedIn = dirsHolding(c.own, in), dirsHolding(c.tracked, in)
	return c
}

// dirsHolding are g's directories that hold the process whose cgroups
// are in (readProcCgroups).
func dirsHolding(g *cgroups.Group, in map[string]string) []cgroups.Dir {
	if g == nil {
		return nil
	}
	var out []cgroups.Dir
	for _, d := range append(slices.Clone(g.Dirs), g.Track...) {
		if in[d.Hierarchy] == d.Cgroup {
			out = append(out, d)
		}
	}
	return out
}

// words names the cgroups that hold the process, for a step's summary:
// what a command it forks starts in, since fork keeps the cgroup.
func (c boxCgroups) words() string {
	switch {
	case len(c.ownIn) > 0 && len(c.trackedIn) > 0:
		return fmt.Sprintf("the box's cgroup %s and stepbox's tracking cgroup %s", c.own.Name, c.tracked.Name)
	case len(c.ownIn) > 0:
		return "the box's cgroup " + c.own.Name
	case len(c.trackedIn) > 0 && c.own != nil:
		return fmt.Sprintf("stepbox's tracking cgroup %s (the box's cgroup %s holds none of its processes until `cgroup attach`)", c.tracked.Name, c.own.Name)
	case len(c.trackedIn) > 0:
		return fmt.Sprintf("stepbox's tracking cgroup %s (the box has no cgroup of its own until `cgroup new` and `cgroup attach`)", c.tracked.Name)
	}
	// Rootless where no cgroup is delegated, or a host that gave stepbox
	// none to write (track): the box process stayed where the session
	// started it.
	if c.own != nil {
		return fmt.Sprintf("the session's cgroup (the box's cgroup %s holds none of its processes until `cgroup attach`, and stepbox tracks it in none)", c.own.Name)
	}
	return "the session's cgroup (the box is in no cgroup of its own nor of stepbox's)"
}
