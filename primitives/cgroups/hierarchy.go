package cgroups

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/prometheus/procfs"

	"stepbox/primitives/step"
)

// Hierarchy is the host's cgroup filesystem as stepbox uses it, chosen once
// by Open: v1 (a tree per controller) or v2 (one tree). Every method that
// changes the kernel returns the Step that records it.
type Hierarchy interface {
	// Mode is how the host mounts its cgroups.
	Mode() Mode
	// Version is 1 or 2: which files Limit and Stats use.
	Version() int
	// Root is the directory the cgroup filesystems are mounted at.
	Root() string
	// Controllers are the controllers stepbox's cgroups get here.
	Controllers() []string
	// Place says where the session's parent cgroup goes and why, without
	// changing anything (stepbox doctor prints it).
	Place(override string) (Placement, error)
	// NewParent creates the session's parent, stepbox-<session PID>, where
	// Place says; override is --cgroup-parent, a cgroup path or "".
	NewParent(override string) (*Group, *step.Step, error)
	// Create makes the cgroup of box under parent, named <box>-<short id>.
	Create(parent *Group, box, id string) (*Group, *step.Step, error)
	// Set writes value to the control file of g named file, as given.
	Set(g *Group, file, value string) (*step.Step, error)
	// Limit translates a memory, pids or cpu limit into this version's
	// control files and writes them.
	Limit(g *Group, kind, value string) ([]Setting, *step.Step, error)
	// Attach moves the processes pids into g by writing them to cgroup.procs.
	Attach(g *Group, pids ...int) (*step.Step, error)
	// Procs lists the processes in g.
	Procs(g *Group) ([]int, error)
	// Stats reads g's limits and usage.
	Stats(g *Group) (Stats, error)
	// Membership reads /proc/PID/cgroup as the session sees it.
	Membership(pid int) ([]procfs.Cgroup, error)
	// Remove removes g and every cgroup under it, children first.
	Remove(g *Group) (*step.Step, error)
}

// Group is one cgroup stepbox made, in every hierarchy it spans. It is
// plain data, so the ledger can keep it and teardown can find it again.
type Group struct {
	Name string `json:"name"`         // directory name: stepbox-4242, web-0123456789ab
	ID   string `json:"id,omitempty"` // a box's short id, as `boxes` shows it
	Dirs []Dir  `json:"dirs"`         // one per hierarchy (v2: one)
	// Enabled lists, top first, the controllers NewParent switched on in
	// cgroup.subtree_control files stepbox did not make (v2: each cgroup
	// from the top of the tree down to the parent's place that had them
	// off); Remove switches them off, deepest first.
	Enabled []Dir `json:"enabled,omitempty"`
	// Track are the Group's directories in trees stepbox uses only to
	// track processes (the controller-less cgroup2 tree of a hybrid host;
	// track.go); its children's are not the learner's.
	Track []Dir `json:"track,omitempty"`
	// Scope is the systemd unit the Group is, when it is the session's
	// delegated scope (scope.go); Home is the cgroup the session came
	// from, where it goes back before the scope is stopped.
	Scope string `json:"scope,omitempty"`
	Home  string `json:"home,omitempty"`
}

// Dir is where a Group sits in one hierarchy.
type Dir struct {
	// Hierarchy is the middle field of /proc/PID/cgroup: "memory",
	// "cpu,cpuacct", "name=systemd"; "" in v2.
	Hierarchy string `json:"hierarchy"`
	Path      string `json:"path"`   // absolute directory
	Cgroup    string `json:"cgroup"` // path as /proc/PID/cgroup shows it
	// Controllers are the controllers this Dir holds (Enabled: switched on).
	Controllers []string `json:"controllers,omitempty"`
	// Kids are, in an Enabled entry, the child cgroups the cgroup had when
	// the controllers were switched on there (subtree.go).
	Kids []string `json:"kids,omitempty"`
}

// dir returns the Dir of g that holds controller c, if any.
func (g *Group) dir(c string) (Dir, bool) {
	for _, d := range g.Dirs {
		for _, have := range d.Controllers {
			if have == c {
				return d, true
			}
		}
	}
	return Dir{}, false
}

// child returns g's child named name, in the same hierarchies.
func (g *Group) child(name string) *Group {
	c := &Group{Name: name}
	for _, d := range g.Dirs {
		c.Dirs = append(c.Dirs, Dir{
			Hierarchy:   d.Hierarchy,
			Path:        path.Join(d.Path, name),
			Cgroup:      path.Join(d.Cgroup, name),
			Controllers: d.Controllers,
		})
	}
	return c
}

// Placement is where the session's parent cgroup goes.
type Placement struct {
	// Rule is which rule chose it: "session" (under the session's own
	// cgroup), "nearest" (the closest ancestor the kernel allows),
	// "root" or "override".
	Rule   string `json:"rule"`
	Dirs   []Dir  `json:"dirs"`   // the directories the parent goes under
	Reason string `json:"reason"` // why, in plain words
	// Controllers are the controllers the parent gets for its children
	// (v2; in v1 each hierarchy is its controllers).
	Controllers []string `json:"controllers,omitempty"`
	// Enable lists, top first, each cgroup above the parent whose
	// cgroup.subtree_control lacks controllers the parent needs, with
	// those controllers: NewParent switches them on (v2).
	Enable []Dir `json:"enable,omitempty"`
	// Track are the directories in tracking-only trees the parent also
	// goes under (track.go).
	Track []Dir `json:"track,omitempty"`
	// Scope is the systemd scope stepbox will ask for (rule "scope").
	Scope string `json:"scope,omitempty"`
}

// ParentPrefix starts the name of every session's parent cgroup, so
// `find /sys/fs/cgroup -name '*stepbox*'` finds them all.
const ParentPrefix = "stepbox-"

// parentName matches stepbox-<PID>-<start time> and an older stepbox's
// stepbox-<PID>, so the sweep finds both.
var parentName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^stepbox-([0-9]+)(?:-[0-9]+)?$`) })

// ParentName is the parent cgroup's name for session ID "<pid>-<start
// time>". Not the PID alone (ut30 F7): two sessions in PID namespaces of
// their own, under one cgroup, are both PID 1, and one took the other's
// stepbox-1 for its own.
func ParentName(session string) string { return ParentPrefix + session }

// sessionOf returns the session PID a parent cgroup is named for.
func sessionOf(name string) (int, bool) {
	m := parentName().FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	pid, err := strconv.Atoi(m[1])
	return pid, err == nil
}

var boxName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`) })

// ErrNoPlace means the kernel's rules leave stepbox no cgroup to make its
// parent in (a container whose top cgroup holds its processes).
var ErrNoPlace = errors.New("no legal place for stepbox's cgroups here")

// ErrNoGroup means a command needs a cgroup the box does not have yet.
var ErrNoGroup = errors.New("the box has no cgroup yet: run `cgroup new` first")

// newID returns a box's short id: 12 random hex digits, as docker ps shows.
func newID() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("short id: read random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// boxGroupName checks box and names its cgroup after it and id (the box's
// short id, like a container's); an empty id gets a new random one.
func boxGroupName(box, id string) (name, _ string, err error) {
	if !boxName().MatchString(box) {
		return "", "", fmt.Errorf("cgroup new: box name %q: use up to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", box)
	}
	if id == "" {
		if id, err = newID(); err != nil {
			return "", "", fmt.Errorf("cgroup new %s: %w", box, err)
		}
	} else if !shortID().MatchString(id) {
		return "", "", fmt.Errorf("cgroup new %s: id %q: use 12 lower-case hex digits", box, id)
	}
	return box + "-" + id, id, nil
}

// BoxOfGroupName is the box a cgroup name names as `cgroup new` makes
// it (boxGroupName: NAME-ID), if it is one.
func BoxOfGroupName(name string) (box string, ok bool) {
	i := strings.LastIndex(name, "-") // a box name may hold a '-'
	if i < 0 || !shortID().MatchString(name[i+1:]) {
		return "", false
	}
	return name[:i], true
}

var shortID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{12}$`) })

// controlFile checks that file names a file inside a cgroup directory.
func controlFile(file string) error {
	if file == "" || file == "." || file == ".." || strings.ContainsRune(file, '/') {
		return fmt.Errorf("cgroup set %q: FILE must be the name of a control file in the box's cgroup (memory.max, pids.max, cgroup.procs), not a path", file)
	}
	return nil
}

// relPath turns a /proc/PID/cgroup path into one relative to a mount of
// its hierarchy whose root is mountRoot: a container's cgroup namespace or
// a bind mount shows only a subtree.
func relPath(cgroupPath, mountRoot string) (string, error) {
	cgroupPath, mountRoot = path.Clean(cgroupPath), path.Clean(mountRoot)
	switch {
	case mountRoot == "/":
		return cgroupPath, nil
	case cgroupPath == mountRoot:
		return "/", nil
	}
	rel, ok := strings.CutPrefix(cgroupPath, mountRoot+"/")
	if !ok {
		return "", fmt.Errorf("cgroup %s lies outside the mounted subtree %s", cgroupPath, mountRoot)
	}
	return "/" + rel, nil
}

// Open detects how root is mounted and returns the Hierarchy for it.
// proc is the proc filesystem (procfs.NewDefaultFS(); tests pass fixture
// trees) and session the PID whose cgroups stepbox's parent goes under.
func Open(root string, proc procfs.FS, session int) (Hierarchy, error) {
	mode, err := Detect(root)
	if err != nil {
		return nil, err
	}
	p, err := proc.Proc(session)
	if err != nil {
		return nil, fmt.Errorf("open cgroups: session %d: %w", session, err)
	}
	self, err := p.Cgroups()
	if err != nil {
		return nil, fmt.Errorf("open cgroups: read /proc/%d/cgroup: %w", session, err)
	}
	mounts, err := p.MountInfo()
	if err != nil {
		return nil, fmt.Errorf("open cgroups: read /proc/%d/mountinfo: %w", session, err)
	}
	var start uint64
	if st, err := p.Stat(); err == nil {
		start = st.Starttime
	}
	id := fmt.Sprintf("%d-%d", session, start)
	base := base{root: path.Clean(root), mode: mode, proc: proc, session: session, id: id, fs: kernelFS{}}
	if mode == Unified {
		u, err := newUnified(base, self, mounts)
		if err != nil {
			return nil, err
		}
		// One process may open sessions one after another (lesson
		// check): a user manager may keep a stopped scope loaded for a
		// while and refuse its name again, so each open gets its own.
		name := id
		if n := scopeOpens.Add(1); n > 1 {
			name += fmt.Sprintf("-%d", n)
		}
		u.unit = ScopeUnit(name)
		u.systemd = hostSystemd(base.root, mode)
		return u, nil
	}
	return newLegacy(base, self, mounts)
}

// scopeOpens counts the unified hierarchies this process has opened.
var scopeOpens atomic.Int64

// base is what both versions keep.
type base struct {
	root    string
	mode    Mode
	proc    procfs.FS
	session int
	id      string // the session's ID, "<pid>-<start time>": its parent's name
	fs      cgroupFS
}

func (b *base) Mode() Mode   { return b.mode }
func (b *base) Root() string { return b.root }

func (b *base) Membership(pid int) ([]procfs.Cgroup, error) {
	p, err := b.proc.Proc(pid)
	if err != nil {
		return nil, fmt.Errorf("cgroup membership of %d: %w", pid, err)
	}
	cg, err := p.Cgroups()
	if err != nil {
		return nil, fmt.Errorf("read /proc/%d/cgroup: %w", pid, err)
	}
	return cg, nil
}

// RemoveGroup is Remove for a group in no systemd scope (a box's): its
// directories and the controllers it switched on say all there is to
// undo, so it needs nothing Open reads of the host.
func RemoveGroup(g *Group) (*step.Step, error) {
	if g != nil && g.Scope != "" {
		return nil, fmt.Errorf("cgroup rm %s: it is in systemd scope %s: remove it through its hierarchy", g.Name, g.Scope)
	}
	return (&base{fs: kernelFS{}}).Remove(g)
}

func (b *base) Remove(g *Group) (*step.Step, error) {
	if g == nil {
		return nil, ErrNoGroup
	}
	s := &step.Step{
		Command: "cgroup rm " + g.Name,
		Summary: "removed cgroup " + g.Name + " and every cgroup under it, children first",
		Man:     []string{"cgroups(7)", "rmdir(2)"},
	}
	var errs []error
	for _, d := range g.all() {
		errs = append(errs, removeTree(b.fs, s, d.Path))
	}
	errs = append(errs, b.disableEnabled(s, g)...)
	return s, errors.Join(errs...)
}

// disableEnabled switches off the controllers g switched on above it
// (g.Enabled), where no cgroup made there since may use them.
func (b *base) disableEnabled(s *step.Step, g *Group) (errs []error) {
	// Deepest first: a cgroup's controllers cannot go off while a child
	// still has them on (EBUSY).
	for i := len(g.Enabled) - 1; i >= 0; i-- {
		e := g.Enabled[i]
		if made := madeSince(e); len(made) > 0 {
			s.Notes = append(s.Notes, fmt.Sprintf("left %s on in %s: %s made there since get it from there and may use it", strings.Join(e.Controllers, " "), e.Cgroup, strings.Join(made, ", ")))
			continue
		}
		if err := disable(b.fs, s, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// madeSince lists the child cgroups of e that were not there when the
// controllers were switched on in it (e.Kids).
func madeSince(e Dir) []string {
	now, _ := subdirs(e.Path)
	var made []string
	for _, k := range now {
		if !slices.Contains(e.Kids, k) {
			made = append(made, k)
		}
	}
	return made
}

// ExistingAncestor is p, or the nearest directory above it that exists:
// on a systemd host Place names a scope that only NewParent makes, and
// its slice is where a test may make cgroups of its own meanwhile.
func ExistingAncestor(p string) string {
	for p != "/" && p != "." && !exists(p) {
		p = path.Dir(p)
	}
	return p
}

// CheckParentPath checks a --cgroup-parent value: a cgroup path as
// /proc/PID/cgroup shows it, absolute, clean (no empty, "." or ".."
// component), so that it names no directory outside the cgroup mount,
// nor another than it seems to (/stepbox-4524/.. is the root, //x is
// /x); printable, as stepbox shows it in every step; and inside no
// session's parent cgroup (stepbox-*): boxes there would land in another
// session's tree, which that session's teardown kills and removes (ut32
// F5). The error names neither the flag nor the value: the flag package
// and Place say them.
func CheckParentPath(p string) error {
	const allowed = "give a cgroup path as /proc/PID/cgroup shows it, starting with / and without empty, . or .. components (such as /mine), in printable characters and outside every stepbox session's cgroup (" + ParentPrefix + "*)"
	if !path.IsAbs(p) {
		return fmt.Errorf("a relative path: %s", allowed)
	}
	if !utf8.ValidString(p) || strings.IndexFunc(p, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("a path with a character that is not printable: %s", allowed)
	}
	if p == "/" {
		return nil
	}
	for _, c := range strings.Split(p[1:], "/") {
		switch {
		case c == "":
			return fmt.Errorf("an empty component: %s", allowed)
		case c == "." || c == "..":
			return fmt.Errorf("a %q component: %s", c, allowed)
		case strings.HasPrefix(c, ParentPrefix):
			return fmt.Errorf("inside a stepbox session's cgroup (%q), whose teardown would kill and remove the boxes: %s", c, allowed)
		}
	}
	return nil
}
