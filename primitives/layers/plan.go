package layers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"stepbox/primitives/step"
)

// Plans of the layer commands: the record each will write, every result
// "?" (step.NotRun), read from the store as it is now; nothing changes.

// planFD is the descriptor a planned open answers with.
const planFD = 3

// PlanPut is the record `layer put NAME PATH [TEXT]` will write.
func (s *Store) PlanPut(name, p, content string) (*step.Step, error) {
	const cmd = "layer put"
	rel, r, err := s.planOpen(cmd, name, p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	host := filepath.Join(s.Root(name), rel)
	st := &step.Step{
		Command: fmt.Sprintf("%s %s %s %s", cmd, name, step.ShellQuote(p), step.ShellQuote(content)),
		Summary: fmt.Sprintf("will write %s into layer %s: %s on the host", p, name, host),
		Man:     []string{"open(2)", "write(2)"},
		Undo:    "rm " + step.ShellQuote(host),
	}
	st.Shell = putShell(s.Root(name), host, content)
	planParents(st, r, rel, s.Root(name))
	if fi, err := r.Lstat(rel); err == nil && isWhiteout(fi) {
		st.Plan(fmt.Sprintf("unlink(%s)", step.Quote(host)))
		st.Shell = append([]string{"rm " + step.ShellQuote(host)}, st.Shell...)
	}
	st.Plan(fmt.Sprintf("openat(AT_FDCWD, %s, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW|O_CLOEXEC, 0644)", step.Quote(host)))
	st.Plan(fmt.Sprintf("write(%d, %s, %d)", planFD, straceBuf(content), len(content)))
	st.Plan(fmt.Sprintf("close(%d)", planFD))
	return st, nil
}

// PlanDel is the record `layer del NAME PATH` will write.
func (s *Store) PlanDel(name, p string) (*step.Step, error) {
	const cmd = "layer del"
	rel, r, err := s.planOpen(cmd, name, p)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	host := filepath.Join(s.Root(name), rel)
	st := &step.Step{
		Command: fmt.Sprintf("%s %s %s", cmd, name, step.ShellQuote(p)),
		Summary: fmt.Sprintf("will put a whiteout for %s in layer %s: the character device 0/0 %s will hide %s of every layer below", p, name, host, p),
		Man:     []string{"mknod(2)"},
		Undo:    "rm " + step.ShellQuote(host),
	}
	if d := filepath.Dir(host); d != s.Root(name) {
		st.Shell = append(st.Shell, "mkdir -p "+step.ShellQuote(d))
	}
	planParents(st, r, rel, s.Root(name))
	fi, err := r.Lstat(rel)
	switch {
	case err == nil && isWhiteout(fi):
		st.Notes = append(st.Notes, fmt.Sprintf("%s is already a whiteout in layer %s: nothing will change", p, name))
	case err == nil && fi.IsDir():
		st.Shell = append(st.Shell, "rm -r "+step.ShellQuote(host))
		st.Notes = append(st.Notes, fmt.Sprintf("the layer's own directory %s will be removed first", p))
	case err == nil:
		st.Shell = append(st.Shell, "rm "+step.ShellQuote(host))
		st.Plan(fmt.Sprintf("unlink(%s)", step.Quote(host)))
	}
	st.Shell = append(st.Shell, "mknod "+step.ShellQuote(host)+" c 0 0")
	st.Plan(fmt.Sprintf("mknod(%s, S_IFCHR|000, makedev(0, 0))", step.Quote(host)))
	return st, nil
}

// planOpen checks what Put and Del check before changing anything, and
// opens the layer's root to look inside it.
func (s *Store) planOpen(cmd, name, p string) (string, *os.Root, error) {
	rel, err := inLayer(cmd, name, p)
	if err != nil {
		return "", nil, err
	}
	if _, err := s.writable(cmd, name); err != nil {
		return "", nil, err
	}
	r, err := os.OpenRoot(s.Root(name))
	if err != nil {
		return "", nil, fmt.Errorf("%s %s: %w", cmd, name, err)
	}
	return rel, r, nil
}

// planParents plans mkdirParents: a mkdir for each missing parent of rel.
func planParents(st *step.Step, r *os.Root, rel, root string) {
	dir := path.Dir(rel)
	if dir == "." {
		return
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		if _, err := r.Lstat(prefix); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		st.Plan(fmt.Sprintf("mkdir(%s, 0755)", step.Quote(filepath.Join(root, prefix))))
	}
}
