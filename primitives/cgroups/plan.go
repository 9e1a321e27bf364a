package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// planFS stands in for the kernel's cgroup filesystem in a plan: it
// answers every mkdir, open, write and close as if it worked, and does
// none of them. The record the real code writes against it is the plan.
//
// The real code reads what it made before (a new v1 cpuset's empty cpus,
// a new v2 cgroup's controllers and processes), so planFS remembers what
// the plan made and wrote and answers the reads as the kernel would then:
// a file of a cgroup the plan made reads as a fresh cgroup's (empty: no
// cpus or mems, no controllers switched on, no processes; its
// cgroup.controllers what its parent switches on), a file the plan wrote
// reads back what was written, and anything else is the real file.
type planFS struct {
	made    map[string]bool   // cgroup directories the plan made
	written map[string]string // control files the plan wrote, as they read back
	open    string            // the file planFD stands for
}

// planFD is the descriptor a planned open answers with: the lowest a
// fresh process would get.
const planFD = 3

func newPlanFS() *planFS {
	return &planFS{made: map[string]bool{}, written: map[string]string{}}
}

func (p *planFS) Mkdir(path string, _ uint32) error {
	p.made[filepath.Clean(path)] = true
	return nil
}

func (p *planFS) Rmdir(path string) error {
	delete(p.made, filepath.Clean(path))
	return nil
}

func (p *planFS) Open(path string, _ int) (int, error) {
	p.open = filepath.Clean(path)
	return planFD, nil
}

func (p *planFS) Write(_ int, b []byte) (int, error) {
	v := strings.TrimSpace(string(b))
	if filepath.Base(p.open) == "cgroup.subtree_control" {
		// The kernel shows the controllers on, not the +/- written.
		on, _ := subtree(p, filepath.Dir(p.open))
		for _, w := range strings.Fields(v) {
			c := w[1:]
			on = slices.DeleteFunc(on, func(x string) bool { return x == c })
			if w[0] == '+' {
				on = append(on, c)
			}
		}
		v = strings.Join(on, " ")
	}
	p.written[p.open] = v
	return len(b), nil
}

func (p *planFS) Close(int) error { return nil }

func (p *planFS) ReadFile(path string) ([]byte, error) {
	path = filepath.Clean(path)
	if v, ok := p.written[path]; ok {
		return []byte(v + "\n"), nil
	}
	if p.made[path] {
		return nil, unix.EISDIR
	}
	if dir := filepath.Dir(path); p.made[dir] {
		if filepath.Base(path) == "cgroup.controllers" {
			return p.ReadFile(filepath.Join(filepath.Dir(dir), "cgroup.subtree_control"))
		}
		return nil, nil
	}
	return os.ReadFile(path)
}

func (p *planFS) Stat(path string) error {
	path = filepath.Clean(path)
	if _, ok := p.written[path]; ok || p.made[path] || p.made[filepath.Dir(path)] {
		return nil
	}
	_, err := os.Stat(path)
	return err
}

// Planning returns h with the kernel replaced by a stand-in that changes
// nothing: NewParent, Create, Set, Limit and Attach on it run their real
// code — the same checks, translations and record — and write nothing.
// One Planning hierarchy remembers what was planned on it, so Create
// after NewParent on it finds the parent NewParent planned. Mark the
// records it returns with MarkNotRun.
func Planning(h Hierarchy) Hierarchy {
	switch v := h.(type) {
	case *legacy:
		c := *v
		c.fs = newPlanFS()
		return &c
	case *unified:
		c := *v
		c.fs = newPlanFS()
		return &c
	}
	return h
}

// planning tells whether fsys is a plan's stand-in.
func planning(fsys cgroupFS) (*planFS, bool) {
	p, ok := fsys.(*planFS)
	return p, ok
}
