package inroot

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
)

// Limits bound a walk of a tree a box or an image controls: a box can
// nest directories past PATH_MAX or make millions of files, and a panel
// must still answer.
type Limits struct {
	Depth   int // directories deeper than this are listed, not read
	Entries int // the walk stops after this many paths
}

// WalkLimits are the limits panels and exports use: deeper and larger
// than any real image (Debian's deepest path is about 15 levels; a full
// distribution is some 100,000 files).
var WalkLimits = Limits{Depth: 128, Entries: 500_000}

// Skipped is what a walk left out, and why.
type Skipped struct {
	Deep   int    // directories not read: deeper than Limits.Depth
	Many   bool   // the walk stopped at Limits.Entries
	Unread int    // paths that could not be read (name too long, gone, …)
	First  string // the first path left out, with its reason
	limits Limits
}

// Any reports whether anything was left out.
func (s Skipped) Any() bool { return s.Deep > 0 || s.Many || s.Unread > 0 }

// String says what was left out, in one line; "" when nothing was.
func (s Skipped) String() string {
	var parts []string
	if s.Deep > 0 {
		parts = append(parts, fmt.Sprintf("too deep: %d dir(s) more than %d levels down not read", s.Deep, s.limits.Depth))
	}
	if s.Many {
		parts = append(parts, fmt.Sprintf("too many: stopped after %d paths", s.limits.Entries))
	}
	if s.Unread > 0 {
		parts = append(parts, fmt.Sprintf("unreadable: %d path(s)", s.Unread))
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + " (first: " + s.First + ")"
}

func (s *Skipped) note(rel, why string) {
	if s.First == "" {
		s.First = shorten("/"+rel) + ": " + why
	}
}

// unreadable marks an error of reading the tree, not of what fn does
// with it.
type unreadable struct{ err error }

func (u unreadable) Error() string { return u.err.Error() }
func (u unreadable) Unwrap() error { return u.err }

// Unreadable marks err, returned by Walk's fn, as a failure to read the
// path: Walk leaves the path out and goes on.
func Unreadable(err error) error {
	if err == nil {
		return nil
	}
	return unreadable{err}
}

// reason is err without the path it names, which a box can make
// thousands of characters long.
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return shorten(err.Error())
}

// shorten cuts a path a box made deep to its head and tail.
func shorten(p string) string {
	const max = 80
	if len(p) <= max {
		return p
	}
	return p[:max/2] + "…" + p[len(p)-max/2:]
}

// Walk calls fn for root and every path under it, parents first, in
// lexical order, as filepath.WalkDir does, within lim. A path below root
// that cannot be read (a directory the walk cannot list, or one for which
// fn returns an Unreadable error) is left out with its subtree and
// counted in Skipped, so one hostile entry cannot stop a panel for good;
// any other error of fn, and an error on root itself, ends the walk.
func Walk(root string, lim Limits, fn fs.WalkDirFunc) (Skipped, error) {
	skipped := Skipped{limits: lim}
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if p == root {
			if err != nil {
				return err
			}
			return fn(p, d, nil)
		}
		rel := strings.TrimPrefix(p[len(root):], "/") // root may end in "/"
		if err != nil {
			skipped.Unread++
			skipped.note(rel, reason(err))
			return nil
		}
		if n++; n > lim.Entries {
			skipped.Many = true
			skipped.note(rel, "too many")
			return fs.SkipAll
		}
		if err := fn(p, d, nil); err != nil {
			var u unreadable
			if !errors.As(err, &u) {
				return err
			}
			skipped.Unread++
			skipped.note(rel, reason(err))
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() && strings.Count(rel, "/")+1 >= lim.Depth {
			skipped.Deep++
			skipped.note(rel, "too deep")
			return fs.SkipDir
		}
		return nil
	})
	return skipped, err
}
