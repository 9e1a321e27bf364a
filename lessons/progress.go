package lessons

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
)

// Progress is where a learner is in the course. It is kept per user in
// $XDG_STATE_HOME/stepbox/progress.json (default ~/.local/state), or in
// the state dir the learner gave (LoadProgressIn), so it survives restarts.
type Progress struct {
	Current string                     `json:"current,omitempty"` // ID of the lesson last opened
	Lessons map[string]*LessonProgress `json:"lessons"`           // by lesson ID

	path  string
	owner *owner
}

// LessonProgress is one lesson's progress.
type LessonProgress struct {
	Step int   `json:"step"`           // the step to resume at, from 0
	Done []int `json:"done,omitempty"` // the steps whose checks have passed
	// Skipped are the steps `next` left before their checks passed.
	Skipped []int `json:"skipped,omitempty"`
	// Refused are the steps `next` left because they cannot be built where
	// stepbox runs (rootless, or an older kernel: Step.Unmet): not failed.
	Refused []int `json:"refused,omitempty"`
}

// owner is the learner behind sudo: files made for them are theirs.
type owner struct{ uid, gid int }

// progressPath is where the learner's progress is kept. Run through sudo,
// stepbox keeps it in the home of the user who ran sudo, not root's.
func progressPath() (string, *owner, error) {
	if dir := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "stepbox", "progress.json"), nil, nil
	}
	if os.Geteuid() == 0 {
		if o, home := sudoUser(); o != nil {
			return filepath.Join(home, ".local", "state", "stepbox", "progress.json"), o, nil
		}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", nil, fmt.Errorf("progress: no $XDG_STATE_HOME and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "stepbox", "progress.json"), nil, nil
}

// sudoUser returns the user who ran sudo and their home, if anyone did.
func sudoUser() (*owner, string) {
	uid, err1 := strconv.Atoi(os.Getenv("SUDO_UID"))
	gid, err2 := strconv.Atoi(os.Getenv("SUDO_GID"))
	if err1 != nil || err2 != nil || uid == 0 {
		return nil, ""
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil || u.HomeDir == "" {
		return nil, ""
	}
	return &owner{uid: uid, gid: gid}, u.HomeDir
}

// LoadProgress reads the learner's progress; none yet is an empty one.
// It always returns a Progress to work with: on an error, an empty one
// (unsaved when there is nowhere to save it).
func LoadProgress() (*Progress, error) {
	path, o, err := progressPath()
	if err != nil {
		return &Progress{Lessons: map[string]*LessonProgress{}}, err
	}
	p, err := ReadProgress(path)
	p.owner = o
	return p, err
}

// LoadProgressIn reads the learner's progress from dir/progress.json
// when dir is given (the --state-dir or $STEPBOX_STATE_DIR the learner
// chose: everything stepbox keeps then stays there), else as
// LoadProgress does.
func LoadProgressIn(dir string) (*Progress, error) {
	if dir == "" {
		return LoadProgress()
	}
	return ReadProgress(filepath.Join(dir, "progress.json"))
}

// ReadProgress reads progress from path; a missing file is empty progress.
func ReadProgress(path string) (*Progress, error) {
	p := &Progress{Lessons: map[string]*LessonProgress{}, path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("progress: %w", err)
	}
	if err := json.Unmarshal(data, p); err != nil {
		return &Progress{Lessons: map[string]*LessonProgress{}, path: path},
			fmt.Errorf("progress: %s is not stepbox's progress file (%v): `lesson reset all` starts afresh", path, err)
	}
	if p.Lessons == nil {
		p.Lessons = map[string]*LessonProgress{}
	}
	return p, nil
}

// Path is the file the progress is saved to; "" when there is none.
func (p *Progress) Path() string { return p.path }

// Lesson returns a lesson's progress, empty if it was never opened.
func (p *Progress) Lesson(id string) *LessonProgress {
	lp, ok := p.Lessons[id]
	if !ok {
		lp = &LessonProgress{}
		p.Lessons[id] = lp
	}
	return lp
}

// IsDone reports whether step i's checks have passed.
func (lp *LessonProgress) IsDone(i int) bool { return slices.Contains(lp.Done, i) }

// MarkDone records that step i passed.
func (lp *LessonProgress) MarkDone(i int) {
	if !lp.IsDone(i) {
		lp.Done = append(lp.Done, i)
		slices.Sort(lp.Done)
	}
	lp.Skipped = slices.DeleteFunc(lp.Skipped, func(s int) bool { return s == i })
	lp.Refused = slices.DeleteFunc(lp.Refused, func(s int) bool { return s == i })
}

// MarkRefused records that `next` left step i because it cannot be built
// where stepbox runs; a step that passed stays done.
func (lp *LessonProgress) MarkRefused(i int) {
	if !lp.IsDone(i) && !slices.Contains(lp.Refused, i) {
		lp.Refused = append(lp.Refused, i)
		slices.Sort(lp.Refused)
	}
	lp.Skipped = slices.DeleteFunc(lp.Skipped, func(s int) bool { return s == i })
}

// IsSkipped reports whether `next` left step i before it passed.
func (lp *LessonProgress) IsSkipped(i int) bool { return slices.Contains(lp.Skipped, i) }

// MarkSkipped records that `next` left step i unfinished; a step that
// passed stays done.
func (lp *LessonProgress) MarkSkipped(i int) {
	if !lp.IsDone(i) && !lp.IsSkipped(i) {
		lp.Skipped = append(lp.Skipped, i)
		slices.Sort(lp.Skipped)
	}
}

// Reset forgets a lesson's progress, or every lesson's when id is "".
func (p *Progress) Reset(id string) {
	if id == "" {
		p.Lessons = map[string]*LessonProgress{}
		p.Current = ""
		return
	}
	delete(p.Lessons, id)
	if p.Current == id {
		p.Current = ""
	}
}

// Save writes the progress atomically: a temporary file in the same
// directory, synced, then renamed over the old one (rename(2)), so a
// crash leaves the old progress or the new, never half of either.
func (p *Progress) Save() error {
	if p.path == "" {
		return errors.New("progress: no $XDG_STATE_HOME and no home directory to keep it in")
	}
	dir := filepath.Dir(p.path)
	if err := p.mkdirs(dir); err != nil {
		return fmt.Errorf("progress: mkdir %s: %w", dir, err)
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".progress-*.json")
	if err != nil {
		return fmt.Errorf("progress: %w", err)
	}
	tmp := f.Name()
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && p.owner != nil {
		err = os.Chown(tmp, p.owner.uid, p.owner.gid)
	}
	if err == nil {
		err = os.Rename(tmp, p.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("progress: write %s: %w", p.path, err)
	}
	return nil
}

// mkdirs makes dir and its missing parents (0700), owned by the learner
// behind sudo when there is one.
func (p *Progress) mkdirs(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := p.mkdirs(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if p.owner != nil {
		return os.Chown(dir, p.owner.uid, p.owner.gid)
	}
	return nil
}
