package primitives

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/cgroups"
)

// Every box of a session counts against one pids.max, on stepbox's parent
// cgroup (cgroups.SessionPidsMax): a fork bomb in one box stops there. A
// box that fills it makes every other box's fork fail with EAGAIN, and
// that box's own `cgroup limit pids` cannot help: the error says whose
// tasks they are (ut25 F6, issue 15 item 10).

// BoxTasks is how many tasks one box holds under stepbox's parent.
type BoxTasks struct {
	Box   string
	Tasks int64
}

// TaskCapError is a fork refused (EAGAIN) while stepbox's parent cgroup
// held its pids.max: the cap every box of the session shares.
type TaskCapError struct {
	Err          error
	Current, Max int64
	File         string     // the parent's pids.max
	Boxes        []BoxTasks // the boxes holding tasks, most first
}

func (e *TaskCapError) Error() string {
	var held []string
	for _, b := range e.Boxes {
		held = append(held, fmt.Sprintf("box %s %d", b.Box, b.Tasks))
	}
	holders, do := "", "end processes in a box, or `rm` one"
	if len(held) > 0 {
		holders = " (" + strings.Join(held, ", ") + ")"
		do = fmt.Sprintf("`rm %s`, or end processes in it", e.Boxes[0].Box)
	}
	return fmt.Sprintf("%v: the session's boxes together hold %d tasks%s, stepbox's cap for all of them (%s = %d), which no box's own `cgroup limit pids` can raise: %s",
		e.Err, e.Current, holders, e.File, e.Max, do)
}

func (e *TaskCapError) Unwrap() error { return e.Err }

// taskCapError is err as a TaskCapError when it is an EAGAIN and
// stepbox's parent cgroup is at its pids.max, else err.
func (s *Session) taskCapError(err error) error {
	if !errors.Is(err, unix.EAGAIN) {
		return err
	}
	s.mu.Lock()
	parent := s.parent
	s.mu.Unlock()
	dir := ""
	if parent != nil {
		for _, d := range parent.Dirs {
			if slices.Contains(d.Controllers, cgroups.Pids) {
				dir = d.Path
			}
		}
	}
	if dir == "" {
		return err
	}
	cur, errC := readInt(filepath.Join(dir, "pids.current"))
	max, errM := readInt(filepath.Join(dir, "pids.max"))
	if errC != nil || errM != nil || cur < max {
		return err
	}
	return &TaskCapError{Err: err, Current: cur, Max: max, File: filepath.Join(dir, "pids.max"), Boxes: s.boxTasks(dir)}
}

// boxTasks counts each box's tasks in the cgroups under stepbox's parent
// at dir: its tracking cgroup (<box>.track) and the learner's
// (<box>-<id>); pids.current counts a cgroup's descendants too. Read from
// the tree, not through the boxes, whose locks a running command holds.
func (s *Session) boxTasks(dir string) []BoxTasks {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	held := map[string]int64{}
	for _, b := range s.Boxes() {
		if b == nil {
			continue
		}
		for _, e := range ents {
			if !e.IsDir() || e.Name() != b.Name+cgroups.TrackSuffix && e.Name() != b.Name+"-"+b.ID {
				continue
			}
			if n, err := readInt(filepath.Join(dir, e.Name(), "pids.current")); err == nil {
				held[b.Name] += n
			}
		}
	}
	var out []BoxTasks
	for name, n := range held {
		if n > 0 {
			out = append(out, BoxTasks{Box: name, Tasks: n})
		}
	}
	slices.SortFunc(out, func(a, b BoxTasks) int {
		if a.Tasks != b.Tasks {
			return int(b.Tasks - a.Tasks)
		}
		return strings.Compare(a.Box, b.Box)
	})
	return out
}
