package layers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"unicode"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// inLayer checks p, a path as the box will see it ("/etc/motd"), and
// returns it relative to the layer's root ("etc/motd"). ".." is refused
// outright rather than cleaned away: "/../etc" must not quietly become
// "/etc".
func inLayer(cmd, name, p string) (string, error) {
	const allowed = "give an absolute path inside the layer, like /etc/motd, without '..'"
	shown := step.Cut(p)
	switch {
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("%s %s: %w %q: %s", cmd, name, ErrBadPath, shown, allowed)
	case strings.ContainsRune(p, 0):
		return "", fmt.Errorf("%s %s: %w %q: NUL bytes cannot be in a file name", cmd, name, ErrBadPath, shown)
	case strings.ContainsFunc(p, unicode.IsControl):
		// The kernel takes any byte but '/' and NUL; stepbox refuses
		// what a terminal acts on (ESC clears it, CR rewrites the line),
		// as `hostname` does: the path is printed back in every panel.
		return "", fmt.Errorf("%s %s: %w %q: a path in a layer holds no control characters (ESC, CR, newline, tab, DEL); letters, digits, spaces and punctuation are allowed", cmd, name, ErrBadPath, shown)
	case len(p) > PathMax:
		return "", fmt.Errorf("%s %s: %w %q: a path in a layer is at most %d bytes, so that under the layer's, the upper dir's and the box's own directories it still fits the kernel's PATH_MAX (4096)", cmd, name, ErrBadPath, shown, PathMax)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return "", fmt.Errorf("%s %s: %w %q: '..' would lead out of the layer; %s", cmd, name, ErrBadPath, shown, allowed)
		}
		if len(part) > unix.NAME_MAX {
			return "", fmt.Errorf("%s %s: %w %q: a file name is at most %d bytes (NAME_MAX)", cmd, name, ErrBadPath, shown, unix.NAME_MAX)
		}
	}
	rel := strings.TrimPrefix(path.Clean(p), "/")
	if rel == "" {
		return "", fmt.Errorf("%s %s: %w %q: that is the layer's root itself; %s", cmd, name, ErrBadPath, shown, allowed)
	}
	return rel, nil
}

// PathMax bounds a path inside a layer: the host path of a file is the
// layer's (or the upper dir's, or a box's merged dir's) directory and
// this, and every host path must fit PATH_MAX (4096) for the tools that
// walk the layer, `layer rm` among them.
const PathMax = 1024

// escapeErr words an error from os.Root. os.Root is what keeps Put and Del
// inside the layer — it resolves each component with openat(O_NOFOLLOW)
// and refuses absolute symlinks and ones that climb out — so a crafted
// layer cannot make stepbox write to the host. This only finds the symlink
// to blame, for the message.
func escapeErr(cmd, name, p string, r *os.Root, err error) error {
	rel := strings.TrimPrefix(path.Clean(p), "/")
	parts := strings.Split(rel, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		fi, lerr := r.Lstat(prefix)
		if lerr != nil || fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		target, _ := r.Readlink(prefix)
		return fmt.Errorf("%s %s: %w %q: /%s is a symlink to %q, which leads out of the layer; a layer's symlinks may only point inside it, relatively: %w",
			cmd, name, ErrBadPath, p, prefix, target, err)
	}
	return fmt.Errorf("%s %s %s: %w", cmd, name, p, err)
}

// mkdirParents makes the missing parent directories of rel (0755, as in
// any rootfs) through r, recording each mkdir it did in st; with plan,
// it plans the same mkdirs and makes nothing.
func mkdirParents(cmd, name, p string, r *os.Root, rel string, st *step.Step, plan bool) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		prefix := strings.Join(parts[:i+1], "/")
		host := filepath.Join(r.Name(), prefix)
		call := fmt.Sprintf("mkdir(%s, 0755)", step.Quote(host))
		if plan {
			if _, err := r.Lstat(prefix); errors.Is(err, fs.ErrNotExist) {
				st.Plan(call)
			}
			continue
		}
		err := r.Mkdir(prefix, 0o755)
		if errors.Is(err, fs.ErrExist) {
			fi, serr := r.Stat(prefix)
			if serr != nil {
				return escapeErr(cmd, name, p, r, serr)
			}
			if !fi.IsDir() {
				return fmt.Errorf("%s %s: %w %q: /%s is a %s in this layer, not a directory", cmd, name, ErrBadPath, p, prefix, kindOf(fi))
			}
			continue
		}
		st.Record(call, err)
		if err != nil {
			return escapeErr(cmd, name, p, r, err)
		}
		if err := r.Chmod(prefix, 0o755); err != nil {
			return fmt.Errorf("%s %s: chmod %s: %w", cmd, name, host, err)
		}
	}
	return nil
}

// open checks p and the layer, takes the store's lock and opens the
// layer's root, through which every change goes (os.Root keeps it
// inside). done releases both. A plan makes the same checks without the
// lock: it changes nothing.
func (s *Store) open(cmd, name, p string, plan bool) (rel string, r *os.Root, done func(), err error) {
	if rel, err = inLayer(cmd, name, p); err != nil {
		return "", nil, nil, err
	}
	unlock := func() {}
	if !plan {
		if unlock, err = s.exclusive(); err != nil {
			return "", nil, nil, fmt.Errorf("%s %s: %w", cmd, name, err)
		}
	}
	if _, err := s.writable(cmd, name); err != nil {
		unlock()
		return "", nil, nil, err
	}
	if r, err = os.OpenRoot(s.Root(name)); err != nil {
		unlock()
		return "", nil, nil, fmt.Errorf("%s %s: %w", cmd, name, err)
	}
	return rel, r, func() { r.Close(); unlock() }, nil
}

// Put writes content to the file p inside layer name, making missing
// parent directories. An earlier whiteout at p is replaced: the file is
// back. Content is written as given.
func (s *Store) Put(name, p, content string) (*step.Step, error) {
	return s.put(name, p, content, false)
}

// PlanPut is the record Put will write, every result "?" (step.NotRun):
// the same function, reading the layer as it is now and changing nothing.
func (s *Store) PlanPut(name, p, content string) (*step.Step, error) {
	return s.put(name, p, content, true)
}

func (s *Store) put(name, p, content string, plan bool) (*step.Step, error) {
	const cmd = "layer put"
	rel, r, done, err := s.open(cmd, name, p, plan)
	if err != nil {
		return nil, err
	}
	defer done()

	host := filepath.Join(s.Root(name), rel)
	summary := "wrote %s into layer %s: %s on the host"
	if plan {
		summary = "will write %s into layer %s: %s on the host"
	}
	st := &step.Step{
		Command: fmt.Sprintf("%s %s %s %s", cmd, name, step.ShellQuote(p), step.ShellQuote(content)),
		Summary: fmt.Sprintf(summary, p, name, host),
		Man:     []string{"open(2)", "write(2)"},
		Undo:    "rm " + step.ShellQuote(host),
	}
	st.Shell = putShell(s.Root(name), host, content)
	if err := mkdirParents(cmd, name, p, r, rel, st, plan); err != nil {
		return st, err
	}
	fi, err := r.Lstat(rel)
	switch {
	case err == nil && isWhiteout(fi):
		// Replacing the whiteout makes the file visible again in the stack.
		err := doOrPlan(st, plan, fmt.Sprintf("unlink(%s)", step.Quote(host)), func() error { return r.Remove(rel) })
		if err != nil {
			return st, fmt.Errorf("%s %s: %w", cmd, name, err)
		}
		st.Shell = append([]string{"rm " + step.ShellQuote(host)}, st.Shell...)
	case err == nil && !fi.Mode().IsRegular():
		return st, fmt.Errorf("%s %s: %w %q: it is a %s in this layer; put writes regular files only", cmd, name, ErrBadPath, p, kindOf(fi))
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return st, escapeErr(cmd, name, p, r, err)
	}
	if plan {
		st.Plan(fmt.Sprintf("openat(AT_FDCWD, %s, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW|O_CLOEXEC, 0644)", step.Quote(host)))
		st.Plan(fmt.Sprintf("write(%d, %s, %d)", planFD, straceBuf(content), len(content)))
		st.Plan(fmt.Sprintf("close(%d)", planFD))
		return st, nil
	}
	if err := writeIn(r, rel, host, content, st); err != nil {
		return st, fmt.Errorf("%s %s %s: %w", cmd, name, p, err)
	}
	return st, nil
}

// writeIn writes content to rel through r with mode 0644, recording the
// open, write and close as strace would show them.
func writeIn(r *os.Root, rel, host, content string, st *step.Step) error {
	open := fmt.Sprintf("openat(AT_FDCWD, %s, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW|O_CLOEXEC, 0644)", step.Quote(host))
	f, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		st.Record(open, err)
		return err
	}
	fd := f.Fd()
	st.Calls = append(st.Calls, step.Call{Syscall: open, Result: fmt.Sprint(fd)})
	// umask may have cut the mode; a rootfs file is 0644.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	n, err := f.WriteString(content)
	st.Calls = append(st.Calls, step.Call{
		Syscall: fmt.Sprintf("write(%d, %s, %d)", fd, straceBuf(content), len(content)),
		Result:  writeResult(n, err),
	})
	if err != nil {
		f.Close()
		return err
	}
	err = f.Close()
	st.Record(fmt.Sprintf("close(%d)", fd), err)
	return err
}

func writeResult(n int, err error) string {
	if err != nil {
		return step.Result(err)
	}
	return fmt.Sprint(n)
}

// straceBuf shows a buffer as strace does: quoted, cut after 32 bytes.
func straceBuf(s string) string {
	if len(s) > 32 {
		return step.Quote(s[:32]) + "..."
	}
	return step.Quote(s)
}

// Del records the deletion of p in layer name as a whiteout: a character
// device with device number 0/0. That is what overlayfs itself writes to an
// upper dir when a file of a lower layer is removed, and what it hides the
// lower file behind when it finds one in a layer stacked above
// (Documentation/filesystems/overlayfs.rst, "whiteouts and opaque
// directories"). Whatever the layer held at p is replaced.
func (s *Store) Del(name, p string) (*step.Step, error) {
	return s.del(name, p, false)
}

// PlanDel is the record Del will write, every result "?" (step.NotRun).
func (s *Store) PlanDel(name, p string) (*step.Step, error) {
	return s.del(name, p, true)
}

func (s *Store) del(name, p string, plan bool) (*step.Step, error) {
	const cmd = "layer del"
	rel, r, done, err := s.open(cmd, name, p, plan)
	if err != nil {
		return nil, err
	}
	defer done()

	host := filepath.Join(s.Root(name), rel)
	summary, removed := "put a whiteout for %s in layer %s: the character device 0/0 %s hides %s of every layer below", "the layer's own directory %s was removed first"
	if plan {
		summary, removed = "will put a whiteout for %s in layer %s: the character device 0/0 %s will hide %s of every layer below", "the layer's own directory %s will be removed first"
	}
	st := &step.Step{
		Command: fmt.Sprintf("%s %s %s", cmd, name, step.ShellQuote(p)),
		Summary: fmt.Sprintf(summary, p, name, host, p),
		Man:     []string{"mknod(2)"},
		Undo:    "rm " + step.ShellQuote(host),
	}
	if d := filepath.Dir(host); d != s.Root(name) {
		st.Shell = append(st.Shell, "mkdir -p "+step.ShellQuote(d))
	}
	if err := mkdirParents(cmd, name, p, r, rel, st, plan); err != nil {
		return st, err
	}
	fi, err := r.Lstat(rel)
	switch {
	case err == nil && isWhiteout(fi):
		if plan {
			st.Summary = fmt.Sprintf("will find %s already a whiteout in layer %s: nothing to do", p, name)
		} else {
			st.Summary = fmt.Sprintf("found %s already a whiteout in layer %s: nothing to do", p, name)
		}
		return st, nil
	case err == nil && fi.IsDir():
		st.Shell = append(st.Shell, "rm -r "+step.ShellQuote(host))
		st.Notes = append(st.Notes, fmt.Sprintf(removed, p))
		if !plan {
			if err := r.RemoveAll(rel); err != nil {
				return st, fmt.Errorf("%s %s: remove %s: %w", cmd, name, host, err)
			}
		}
	case err == nil:
		st.Shell = append(st.Shell, "rm "+step.ShellQuote(host))
		if err := doOrPlan(st, plan, fmt.Sprintf("unlink(%s)", step.Quote(host)), func() error { return r.Remove(rel) }); err != nil {
			return st, fmt.Errorf("%s %s: %w", cmd, name, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return st, escapeErr(cmd, name, p, r, err)
	}
	st.Shell = append(st.Shell, "mknod "+step.ShellQuote(host)+" c 0 0")
	if plan {
		st.Plan(fmt.Sprintf("mknod(%s, S_IFCHR|000, makedev(0, 0))", step.Quote(host)))
		return st, nil
	}
	if err := mknodWhiteout(r, rel, host, st); err != nil {
		return st, fmt.Errorf("%s %s %s: %w", cmd, name, p, err)
	}
	return st, nil
}

// mknodWhiteout makes the whiteout rel. The parent is opened through r, so
// the mknodat below names a single component in a directory already known
// to be inside the layer. Since Linux 5.8 a 0/0 device needs no CAP_MKNOD
// (commit a3c751a50fe6, "vfs: allow unprivileged whiteout creation").
func mknodWhiteout(r *os.Root, rel, host string, st *step.Step) error {
	dir, err := r.Open(path.Dir(rel))
	if err != nil {
		return err
	}
	defer dir.Close()
	call := fmt.Sprintf("mknod(%s, S_IFCHR|000, makedev(0, 0))", step.Quote(host))
	return st.Do(call, func() error {
		return unix.Mknodat(int(dir.Fd()), path.Base(rel), unix.S_IFCHR|0, int(unix.Mkdev(0, 0)))
	})
}

// isWhiteout reports whether fi is an overlayfs whiteout: a 0/0 char device.
func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	sys, ok := fi.Sys().(*syscall.Stat_t)
	return ok && sys.Rdev == 0
}

func kindOf(fi fs.FileInfo) Kind {
	switch m := fi.Mode(); {
	case isWhiteout(fi):
		return Whiteout
	case m.IsDir():
		return Dir
	case m&fs.ModeSymlink != 0:
		return Symlink
	case m.IsRegular():
		return File
	}
	return Other
}

// putShell is `layer put` with standard tools, for Put and its plan.
func putShell(root, host, content string) []string {
	var sh []string
	if d := filepath.Dir(host); d != root {
		sh = append(sh, "mkdir -p "+step.ShellQuote(d))
	}
	return append(sh, "printf %s "+step.ShellQuote(content)+" > "+step.ShellQuote(host))
}
