package cgroups

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"stepbox/primitives/step"
)

// cgroupFS is the cgroup filesystem as stepbox changes it: the five
// syscalls behind mkdir, echo > FILE and rmdir, and the reads a step makes
// on the way (what a control file holds, whether a file is there), which
// depend on what the step made before. The kernel implements it for real;
// v2 tests swap in a fixture tree that keeps the kernel's v2 rules, and a
// plan a stand-in that remembers what it made (planFS).
type cgroupFS interface {
	Mkdir(path string, mode uint32) error
	Rmdir(path string) error
	Open(path string, flags int) (int, error)
	Write(fd int, p []byte) (int, error)
	Close(fd int) error
	ReadFile(path string) ([]byte, error)
	Stat(path string) error
}

type kernelFS struct{}

func (kernelFS) Mkdir(path string, mode uint32) error     { return unix.Mkdir(path, mode) }
func (kernelFS) Rmdir(path string) error                  { return unix.Rmdir(path) }
func (kernelFS) Open(path string, flags int) (int, error) { return unix.Open(path, flags, 0) }
func (kernelFS) Write(fd int, p []byte) (int, error)      { return unix.Write(fd, p) }
func (kernelFS) Close(fd int) error                       { return unix.Close(fd) }
func (kernelFS) ReadFile(path string) ([]byte, error)     { return os.ReadFile(path) }
func (kernelFS) Stat(path string) error                   { _, err := os.Stat(path); return err }

// writeFlags are what a shell's `echo VALUE > FILE` opens with, minus
// O_CREAT: a control file that does not exist is an error, never created.
const writeFlags = unix.O_WRONLY | unix.O_TRUNC | unix.O_CLOEXEC

const writeFlagNames = "O_WRONLY|O_TRUNC|O_CLOEXEC"

// mkdir creates one cgroup directory; the kernel fills it with control files.
func mkdir(fsys cgroupFS, s *step.Step, dir string) error {
	call := fmt.Sprintf("mkdirat(AT_FDCWD, %s, 0755)", step.Quote(dir))
	if err := s.Do(call, func() error { return fsys.Mkdir(dir, 0o755) }); err != nil {
		return fmt.Errorf("mkdir cgroup %s: %w", dir, err)
	}
	shell(s, "mkdir "+dir)
	return nil
}

// rmdir removes one empty cgroup directory (the kernel drops its control files).
func rmdir(fsys cgroupFS, s *step.Step, dir string) error {
	if err := s.Do(rmdirCall(dir), func() error { return fsys.Rmdir(dir) }); err != nil {
		return fmt.Errorf("rmdir cgroup %s: %w", dir, err)
	}
	shell(s, "rmdir "+dir)
	return nil
}

// rmdirCall is rmdir(2) on dir as strace prints it.
func rmdirCall(dir string) string { return fmt.Sprintf("rmdir(%s)", step.Quote(dir)) }

// writeFile writes value to one control file as `echo value > path` does,
// recording openat, write and close as strace prints them.
func writeFile(fsys cgroupFS, s *step.Step, path, value string) error {
	open := fmt.Sprintf("openat(AT_FDCWD, %s, %s)", step.Quote(path), writeFlagNames)
	fd, err := fsys.Open(path, writeFlags)
	if err != nil {
		s.Record(open, err)
		return fmt.Errorf("open %s for writing: %w", path, &step.SyscallError{Call: open, Err: err})
	}
	if s != nil {
		s.Calls = append(s.Calls, step.Call{Syscall: open, Result: strconv.Itoa(fd)})
	}
	call := fmt.Sprintf("write(%d, %s, %d)", fd, step.Quote(value), len(value))
	n, werr := fsys.Write(fd, []byte(value))
	if werr == nil && n != len(value) {
		werr = unix.EIO
	}
	if werr != nil {
		s.Record(call, werr)
	} else if s != nil {
		s.Calls = append(s.Calls, step.Call{Syscall: call, Result: strconv.Itoa(n)})
	}
	cerr := s.Do(fmt.Sprintf("close(%d)", fd), func() error { return fsys.Close(fd) })
	shell(s, fmt.Sprintf("echo %s > %s", shellWord(value), path))
	if werr != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, &step.SyscallError{Call: call, Err: werr})
	}
	if cerr != nil {
		return fmt.Errorf("close %s: %w", path, cerr)
	}
	return nil
}

// shell records the standard-tools form of a step; s may be nil.
func shell(s *step.Step, line string) {
	if s != nil {
		s.Shell = append(s.Shell, line)
	}
}

// shellWord quotes v for the shell line only when it needs it ("50000 100000").
func shellWord(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n'\"\\$`;&|<>*?()[]{}!#~") {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

// readFile reads one control file, trimmed of its trailing newline.
func readFile(path string) (string, error) { return readIn(kernelFS{}, path) }

// readIn reads one control file through fsys: in a plan, a file of a
// cgroup the plan made reads as the kernel would show it then.
func readIn(fsys cgroupFS, path string) (string, error) {
	b, err := fsys.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// existsIn tells whether path is there, as fsys sees it.
func existsIn(fsys cgroupFS, path string) bool { return fsys.Stat(path) == nil }

// isCgroupIn tells whether dir is a cgroup, as fsys sees it: a directory
// with the cgroup.procs every cgroup has. A control file is none, though
// /cgroup.procs, /tasks and /cgroup.clone_children exist in every
// hierarchy: a --cgroup-parent naming one passed for a cgroup, and every
// box ran untracked (ut33 F5).
func isCgroupIn(fsys cgroupFS, dir string) bool {
	return existsIn(fsys, strings.TrimSuffix(dir, "/")+"/cgroup.procs")
}

// readPIDs reads cgroup.procs (or tasks): one PID a line.
func readPIDs(path string) ([]int, error) { return pidsIn(kernelFS{}, path) }

// pidsIn is readPIDs through fsys.
func pidsIn(fsys cgroupFS, path string) ([]int, error) {
	text, err := readIn(fsys, path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(text) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: bad PID %q: %w", path, f, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// subdirs lists the child cgroups of dir.
func subdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list cgroup %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names, nil
}
