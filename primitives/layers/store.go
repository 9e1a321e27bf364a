// Package layers is the layer store: directories that overlayfs stacks as
// lowerdirs. A layer is plain files on the host — <store>/<name>/root is its
// content and <store>/<name>/layer.json says what it is. Nothing here mounts
// anything; the overlay code reads Root(name) and calls Lock before mounting.
package layers

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"stepbox/primitives/onefs"
	"stepbox/primitives/step"
)

var (
	// ErrNoLayer is returned for a name that has no layer in the store.
	ErrNoLayer = errors.New("no such layer")
	// ErrBadName is returned for a layer name outside nameRule.
	ErrBadName = errors.New("bad layer name")
	// ErrBadPath is returned for a path that is not a plain absolute path inside a layer.
	ErrBadPath = errors.New("bad path in layer")
	// ErrReadOnly is returned for a change to a builtin layer or one a box has mounted.
	ErrReadOnly = errors.New("layer is read-only")
	// ErrInUse is returned for the removal of a layer a box may have mounted.
	ErrInUse = errors.New("layer is in use")
	// ErrExists is returned by New for a name already taken.
	ErrExists = errors.New("layer exists")
)

// nameRule is what a layer name may be: a directory name with no '/', no
// spaces and no leading '.', so it can never be "..", a hidden temp dir of
// the store, or a word the command line would split.
var nameRule = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,31}$`) })

const nameAllowed = "1 to 32 letters, digits, '_', '.' or '-', starting with a letter or digit"

// Layer is what layer.json records about a layer.
type Layer struct {
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Builtin     bool      `json:"builtin"` // built by stepbox itself (fixtures), never changed by commands
	Created     time.Time `json:"created"`
	Locked      bool      `json:"locked"`               // read-only because a box mounted it
	LockedBy    string    `json:"locked_by,omitempty"`  // the first box that mounted it
	Recipe      string    `json:"recipe,omitempty"`     // builtins: which fixture recipe built it
	Digest      string    `json:"digest,omitempty"`     // builtins: digest of the content, to detect damage
	Image       string    `json:"image,omitempty"`      // image layers: the image that unpacked it
	DiffID      string    `json:"diff_id,omitempty"`    // image layers: digest of the uncompressed tar it was unpacked from
	CreatedBy   string    `json:"created_by,omitempty"` // image layers: the command that made it (the config's history)
	Root        string    `json:"-"`                    // host path of the content dir, the overlay lowerdir
}

// Store is a directory of layers, e.g. /var/lib/stepbox/layers.
type Store struct {
	Dir string
	// InUse says why a layer a box once mounted may still be mounted, or
	// returns nil when no box can be using it any more; then `layer rm`
	// may remove it. Without it such a layer is never removed.
	InUse func(name string) error
}

// Open returns the store at dir, creating dir (0700) if it is missing.
func Open(dir string) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("layer store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("layer store: mkdir %s: %w", abs, err)
	}
	return &Store{Dir: abs}, nil
}

// Root returns the host path of the content dir of layer name, the
// overlay lowerdir. It does not check name; Get does.
func (s *Store) Root(name string) string {
	return filepath.Join(s.Dir, name, "root")
}

func (s *Store) metaPath(name string) string {
	return filepath.Join(s.Dir, name, "layer.json")
}

// CheckName returns an ErrBadName error unless name is a valid layer name.
func CheckName(name string) error {
	if !nameRule().MatchString(name) {
		return fmt.Errorf("%w %q: use %s", ErrBadName, name, nameAllowed)
	}
	return nil
}

// List returns every layer, builtins first, then by name. Directories
// without a readable layer.json (a crash, a hand-made dir) are skipped.
func (s *Store) List() ([]Layer, error) {
	des, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	var out []Layer
	for _, de := range des {
		if !de.IsDir() || CheckName(de.Name()) != nil {
			continue
		}
		l, err := s.read(de.Name())
		if err != nil {
			continue
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Builtin != out[j].Builtin {
			return out[i].Builtin
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// Get returns layer name, or an error wrapping ErrNoLayer that lists the
// layers there are.
func (s *Store) Get(name string) (Layer, error) {
	if err := CheckName(name); err != nil {
		return Layer{}, err
	}
	l, err := s.read(name)
	if errors.Is(err, os.ErrNotExist) {
		return Layer{}, s.noLayer(name)
	}
	return l, err
}

func (s *Store) noLayer(name string) error {
	all, err := s.List()
	if err != nil {
		return fmt.Errorf("%w %q (%v)", ErrNoLayer, name, err)
	}
	names := make([]string, len(all))
	for i, l := range all {
		names[i] = l.Name
	}
	if len(names) == 0 {
		return fmt.Errorf("%w %q: the store %s is empty", ErrNoLayer, name, s.Dir)
	}
	return fmt.Errorf("%w %q: layers are %s", ErrNoLayer, name, strings.Join(names, ", "))
}

func (s *Store) read(name string) (Layer, error) {
	b, err := os.ReadFile(s.metaPath(name))
	if err != nil {
		return Layer{}, err
	}
	var l Layer
	if err := json.Unmarshal(b, &l); err != nil {
		return Layer{}, fmt.Errorf("layer %q: parse %s: %w", name, s.metaPath(name), err)
	}
	if l.Name != name {
		return Layer{}, fmt.Errorf("layer %q: %s names layer %q", name, s.metaPath(name), l.Name)
	}
	l.Root = s.Root(name)
	return l, nil
}

// write replaces layer.json in dir atomically: readers never see half a file.
func writeMeta(dir string, l Layer) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("encode layer.json of %q: %w", l.Name, err)
	}
	if err := writeAtomic(filepath.Join(dir, "layer.json"), append(b, '\n')); err != nil {
		return fmt.Errorf("write layer.json of %q: %w", l.Name, err)
	}
	return nil
}

// writeAtomic replaces file with data: written beside it under a hidden
// temporary name, then renamed over it, so readers never see half a file.
func writeAtomic(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+"-")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), file)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}

// exclusive takes the store's lock file, serialising changes between
// stepbox sessions that share one state dir. flock(2) is released by the
// kernel if the session dies.
func (s *Store) exclusive() (unlock func(), err error) {
	path := filepath.Join(s.Dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("flock(%s, LOCK_EX): %w", path, err)
	}
	return func() { f.Close() }, nil
}

// writable returns the layer name if the command cmd may change it.
func (s *Store) writable(cmd, name string) (Layer, error) {
	l, err := s.Get(name)
	if err != nil {
		return Layer{}, fmt.Errorf("%s: %w", cmd, err)
	}
	switch {
	case l.Builtin:
		return Layer{}, fmt.Errorf("%s: %w: %q is built in and shared by every box; make your own with `layer new NAME`", cmd, ErrReadOnly, name)
	case l.Image != "":
		return Layer{}, fmt.Errorf("%s: %w: %q is a layer of image %s, unpacked from its tar; it goes with `image rm %s`", cmd, ErrReadOnly, name, l.Image, l.Image)
	case l.Locked:
		return Layer{}, fmt.Errorf("%s: %w: box %q mounted %q, and a mounted lowerdir must not change under overlayfs; make a new layer instead (`layer new NAME`)", cmd, ErrReadOnly, l.LockedBy, name)
	}
	return l, nil
}

// removable checks that `layer rm` may remove layer name: not a builtin,
// and, if a box mounted it once, no box is using it now (InUse). Its
// content never changes while it exists; removing it changes nothing any
// box sees.
func (s *Store) removable(name string) error {
	l, err := s.Get(name)
	if err != nil {
		return fmt.Errorf("layer rm: %w", err)
	}
	if !l.Locked || l.Builtin || s.InUse == nil {
		_, err := s.writable("layer rm", name)
		return err
	}
	if err := s.InUse(name); err != nil {
		return fmt.Errorf("layer rm: %w: %q may still be mounted: %w", ErrReadOnly, name, err)
	}
	return nil
}

// New makes an empty layer: a directory holding root/ (0755) and layer.json.
// It is built under a temporary name and renamed with RENAME_NOREPLACE, so
// a crash leaves no half-made layer and two sessions cannot both win.
func (s *Store) New(name, description string) (*step.Step, error) {
	return s.newLayer(name, description, false)
}

// PlanNew is the record `layer new NAME` will write.
func (s *Store) PlanNew(name string) (*step.Step, error) {
	st, err := s.newLayer(name, "", true)
	if err != nil {
		return nil, err
	}
	st.MarkNotRun()
	return st, nil
}

// newLayer is New and, with plan, its plan: nothing is made, the
// temporary name is XXXXXXXXX.
func (s *Store) newLayer(name, description string, plan bool) (*step.Step, error) {
	if err := CheckName(name); err != nil {
		return nil, fmt.Errorf("layer new: %w", err)
	}
	if !plan {
		unlock, err := s.exclusive()
		if err != nil {
			return nil, fmt.Errorf("layer new %s: %w", name, err)
		}
		defer unlock()
	}

	final := filepath.Join(s.Dir, name)
	st := &step.Step{
		Command: "layer new " + name,
		Shell:   []string{"mkdir -p " + step.ShellQuote(s.Root(name))},
		Man:     []string{"mkdir(2)", "rename(2)"},
		Undo:    "rm -r " + step.ShellQuote(final),
	}
	st.Tell(fmt.Sprintf("made layer %s: the empty directory %s, which overlayfs can stack as a lowerdir", name, s.Root(name)),
		fmt.Sprintf("will make layer %s: the empty directory %s, which overlayfs can stack as a lowerdir", name, s.Root(name)))
	if _, err := os.Lstat(final); err == nil {
		return nil, fmt.Errorf("layer new: %w: %q is taken (see `layers`)", ErrExists, name)
	}
	tmp := filepath.Join(s.Dir, ".new-"+name+"-XXXXXXXXX")
	if plan {
		st.Notes = append(st.Notes, "the layer will be built under a temporary name (XXXXXXXXX is random) and renamed into place, so no half-made layer is ever seen")
		st.Plan(fmt.Sprintf("mkdir(%s, 0700)", step.Quote(tmp)))
	} else {
		var err error
		if tmp, err = os.MkdirTemp(s.Dir, ".new-"+name+"-"); err != nil {
			return nil, fmt.Errorf("layer new %s: %w", name, err)
		}
		st.Record(fmt.Sprintf("mkdir(%s, 0700)", step.Quote(tmp)), nil)
		defer onefs.RemoveAll(tmp) // a no-op once renamed
	}
	root := filepath.Join(tmp, "root")
	if err := doOrPlan(st, plan, fmt.Sprintf("mkdir(%s, 0755)", step.Quote(root)), func() error { return mkdir(root, 0o755) }); err != nil {
		return st, fmt.Errorf("layer new %s: %w", name, err)
	}
	if !plan {
		l := Layer{Name: name, Description: description, Created: time.Now().UTC()}
		if err := writeMeta(tmp, l); err != nil {
			return st, fmt.Errorf("layer new: %w", err)
		}
	}
	call := fmt.Sprintf("renameat2(AT_FDCWD, %s, AT_FDCWD, %s, RENAME_NOREPLACE)", step.Quote(tmp), step.Quote(final))
	err := doOrPlan(st, plan, call, func() error {
		return unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, final, unix.RENAME_NOREPLACE)
	})
	if errors.Is(err, unix.EEXIST) {
		return st, fmt.Errorf("layer new: %w: %q is taken (see `layers`)", ErrExists, name)
	}
	if err != nil {
		return st, fmt.Errorf("layer new %s: %w", name, err)
	}
	return st, nil
}

// doOrPlan performs call and records it (step.Do) or, in a plan, records
// it as not run.
func doOrPlan(st *step.Step, plan bool, call string, fn func() error) error {
	if plan {
		st.Plan(call)
		return nil
	}
	return st.Do(call, fn)
}

// mkdir makes dir with exactly perm, whatever the umask.
func mkdir(dir string, perm os.FileMode) error {
	if err := os.Mkdir(dir, perm); err != nil {
		return err
	}
	return os.Chmod(dir, perm)
}

// Lock marks layer name read-only because box mounted it. overlayfs
// forbids changing a lowerdir while it is mounted (Documentation/
// filesystems/overlayfs.rst, "Changes to underlying filesystems"), and a
// layer another box saw must stay what it saw, so the mark is permanent.
func (s *Store) Lock(name, box string) error {
	unlock, err := s.exclusive()
	if err != nil {
		return fmt.Errorf("lock layer %s: %w", name, err)
	}
	defer unlock()
	l, err := s.Get(name)
	if err != nil {
		return fmt.Errorf("lock layer: %w", err)
	}
	if l.Locked {
		return nil
	}
	l.Locked, l.LockedBy = true, box
	return writeMeta(filepath.Join(s.Dir, name), l)
}

// Remove deletes layer name with everything in it. Builtin layers and layers
// a box has mounted cannot be removed.
func (s *Store) Remove(name string) (*step.Step, error) {
	return s.remove(name, s.removable)
}

func (s *Store) remove(name string, removable func(string) error) (*step.Step, error) {
	return s.removeLayer(name, removable, false)
}

// PlanRemove is the record `layer rm NAME` will write: the layer moved
// out of sight, then each of its files and directories removed.
func (s *Store) PlanRemove(name string) (*step.Step, error) {
	st, err := s.removeLayer(name, s.removable, true)
	if err != nil {
		return nil, err
	}
	st.MarkNotRun()
	return st, nil
}

// removeLayer is remove and, with plan, its plan: nothing is removed,
// the time in the name set aside is N.
func (s *Store) removeLayer(name string, removable func(string) error, plan bool) (*step.Step, error) {
	if !plan {
		unlock, err := s.exclusive()
		if err != nil {
			return nil, fmt.Errorf("layer rm %s: %w", name, err)
		}
		defer unlock()
	}
	if err := removable(name); err != nil {
		return nil, err
	}
	dir := filepath.Join(s.Dir, name)
	st := &step.Step{
		Command: "layer rm " + name,
		Shell:   []string{"rm -r " + step.ShellQuote(dir)},
		Man:     []string{"rename(2)", "unlink(2)", "rmdir(2)"},
		Undo:    "none: the files are gone",
	}
	st.Tell(fmt.Sprintf("removed layer %s and its directory %s", name, dir), fmt.Sprintf("will remove layer %s and its directory %s", name, dir))
	// Out of sight first, so a crash midway leaves no half-removed layer
	// that still looks like one; Sweep finishes the job.
	aside := filepath.Join(s.Dir, fmt.Sprintf(".rm-%s-%d", name, time.Now().UnixNano()))
	walked := aside
	if plan {
		aside, walked = filepath.Join(s.Dir, ".rm-"+name+"-N"), dir
		st.Notes = append(st.Notes, "the layer will first be renamed out of sight (N is a timestamp), so a crash midway leaves no half-removed layer")
	}
	if err := doOrPlan(st, plan, fmt.Sprintf("rename(%s, %s)", step.Quote(dir), step.Quote(aside)), func() error { return os.Rename(dir, aside) }); err != nil {
		return st, fmt.Errorf("layer rm %s: %w", name, err)
	}
	if !plan {
		// Deepest first, each entry its own unlinkat(2), as rm -r does,
		// never through a mount in the layer (onefs).
		if err := onefs.Remove(aside, st.Do); err != nil {
			return st, fmt.Errorf("layer rm %s: %w", name, err)
		}
		return st, nil
	}
	// The plan: the same unlinkat(2) calls, in the same order, for what
	// the layer holds now.
	calls, err := onefs.Plan(walked, aside)
	if err != nil {
		return st, fmt.Errorf("layer rm %s: %w", name, err)
	}
	for _, call := range calls {
		st.Plan(call)
	}
	return st, nil
}
