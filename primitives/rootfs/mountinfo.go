package rootfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A box decides how many mounts its namespace holds: the kernel allows
// fs.mount-max (100,000 by default) per namespace, and a privileged box
// may raise it. So a mount table is read as a stream, a line at a time,
// and only what is shown is kept, with the count of the rest (as `stack`
// stops at its path limit and says so).
//
// The house rule is to read /proc through prometheus/procfs, but its
// GetProcMounts reads the whole file into memory and parses every line
// into a struct of three maps before returning: for 11,687 mounts that
// was seconds of CPU and a few hundred MB the session kept. It has no
// per-line parser to call, so the lines are parsed here, field by field
// as procfs does (proc_pid_mountinfo(5)), without its maps.

// MountsKept is how many mounts a MountTable keeps, in mountinfo order:
// more than any lesson makes, and more than a panel shows.
const MountsKept = 1000

// MountsReadMax is how many lines of a mountinfo file are read at most:
// ten times the kernel's default fs.mount-max. Past it, the reader stops
// with ErrMountsTooMany.
const MountsReadMax = 1_000_000

// mountLineMax bounds one line: a mount point and its root escaped (each
// byte up to four, "\040") at PATH_MAX, and the superblock options,
// which the kernel gives in a page.
const mountLineMax = 1 << 20

// ErrMountsTooMany is a mount table with more than MountsReadMax lines:
// what was read of it stands, the rest was not read.
var ErrMountsTooMany = fmt.Errorf("more than %d mounts: the rest was not read", MountsReadMax)

// The kernel's time to list a mount table grows with the square of one
// mount point's stack (20,000 tmpfs mounts stacked on one directory:
// 12-19 s for the one read), and a box builds such a stack with a loop.
// So every read of a box's table takes a context: it stops at its
// deadline or at Ctrl-C, checked between lines, and says how far it got
// (MountsCutError). The file is read a little at a time (mountReadSize):
// the kernel generates what one read(2) asks for in one go, and a
// megabyte's worth of a deep stack is seconds no signal can cut.

// PanelReadTime is how long a panel waits for a box's mount table.
var PanelReadTime = 2 * time.Second

// StepReadTime is how long a step waits for a box's mount table before
// it fails: longer than a panel's, as the step cannot show a part.
var StepReadTime = 10 * time.Second

// mountReadSize is the most one read(2) of a mountinfo file asks for:
// a few pages, so a deadline or Ctrl-C is seen within a fraction of a
// second even for a deep stack, at some 10% more kernel time than 64 KiB.
const mountReadSize = 16 << 10

// MountsCutError is a mount table read that stopped before its end: at
// its deadline, or interrupted. What was read of it stands.
type MountsCutError struct {
	Read int           // mounts read before it stopped
	Took time.Duration // how long this table was read before it stopped
	Err  error         // context.DeadlineExceeded or context.Canceled
}

func (e *MountsCutError) Error() string {
	if errors.Is(e.Err, context.DeadlineExceeded) {
		return fmt.Sprintf("the kernel was still listing the mount table after %s: %d mounts read, the rest not", e.Took.Round(time.Millisecond), e.Read)
	}
	return fmt.Sprintf("interrupted after %d mounts read: the rest of the mount table was not read", e.Read)
}

func (e *MountsCutError) Unwrap() error { return e.Err }

// smallReads hands the scanner at most mountReadSize bytes a read.
type smallReads struct{ r io.Reader }

func (s smallReads) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), mountReadSize)]) }

// ScanMounts reads the mount table of pid from the proc filesystem at
// proc (/proc, or a fixture tree in tests), a line at a time, handing
// each mount to each; it stops at the first error each returns, and at
// ctx's end with a *MountsCutError.
func ScanMounts(ctx context.Context, proc string, pid int, each func(Mount) error) error {
	path := filepath.Join(proc, strconv.Itoa(pid), "mountinfo")
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("mount table of %d: open %s: %w", pid, path, err)
	}
	defer f.Close()
	var stop error // each's own error: it says what it is
	err = ScanMountinfo(ctx, f, func(m Mount) error {
		stop = each(m)
		return stop
	})
	if err != nil && err != stop {
		return fmt.Errorf("mount table of %d: %s: %w", pid, path, err)
	}
	return err
}

// ScanMountinfo parses a mountinfo stream line by line.
func ScanMountinfo(ctx context.Context, r io.Reader, each func(Mount) error) error {
	return scanMountLines(ctx, r, func(n int, line []byte) error {
		m, err := parseMountLine(string(line))
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		return each(m)
	})
}

// scanMountLines hands each line of a mountinfo stream to each, with its
// number; the line's bytes are valid until each returns. It stops with
// a *MountsCutError when ctx ends.
func scanMountLines(ctx context.Context, r io.Reader, each func(n int, line []byte) error) error {
	start := time.Now()
	sc := bufio.NewScanner(smallReads{r})
	sc.Buffer(make([]byte, 0, 64<<10), mountLineMax)
	for n := 1; sc.Scan(); n++ {
		if ctx.Err() != nil {
			return &MountsCutError{Read: n - 1, Took: time.Since(start), Err: ctx.Err()}
		}
		if n > MountsReadMax {
			return ErrMountsTooMany
		}
		if err := each(n, sc.Bytes()); err != nil {
			return err
		}
	}
	if errors.Is(sc.Err(), bufio.ErrTooLong) {
		return fmt.Errorf("a line longer than %d bytes: %w", mountLineMax, sc.Err())
	}
	return sc.Err()
}

// readMountTable reads a mount table keeping the first MountsKept
// mounts; the others are only counted, never parsed. Cut short by ctx,
// it returns what it read with a *MountsCutError.
func readMountTable(ctx context.Context, r io.Reader, pid int) (MountTable, error) {
	t := MountTable{PID: pid}
	err := scanMountLines(ctx, r, func(n int, line []byte) error {
		t.Total = n
		if len(t.Mounts) == MountsKept {
			return nil
		}
		m, err := parseMountLine(string(line))
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		t.Mounts = append(t.Mounts, m)
		return nil
	})
	return t, err
}

// parseMountLine parses one line of mountinfo:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//
// The kernel escapes a field's spaces, tabs, newlines and backslashes
// ("\040" for a space); each field is decoded back to the bytes the box
// gave (unescapeMountinfo), which may hold any other byte as it is: an
// ESC, a carriage return. Whoever prints them escapes them.
func parseMountLine(line string) (Mount, error) {
	head, tail, ok := strings.Cut(line, " - ")
	if !ok {
		return Mount{}, fmt.Errorf("no \" - \" separator in %q", cutLine(line))
	}
	f := strings.Split(head, " ")
	if len(f) < 6 {
		return Mount{}, fmt.Errorf("too few fields before \" - \" in %q", cutLine(line))
	}
	id, err := strconv.Atoi(f[0])
	if err != nil {
		return Mount{}, fmt.Errorf("mount ID %q: %w", cutLine(f[0]), err)
	}
	parent, err := strconv.Atoi(f[1])
	if err != nil {
		return Mount{}, fmt.Errorf("parent ID %q: %w", cutLine(f[1]), err)
	}
	t := strings.SplitN(tail, " ", 3)
	if len(t) != 3 {
		return Mount{}, fmt.Errorf("too few fields after \" - \" in %q", cutLine(line))
	}
	u := unescapeMountinfo
	return Mount{
		ID: id, Parent: parent, Dev: f[2], Root: u(f[3]), Point: u(f[4]),
		FSType: u(t[0]), Source: u(t[1]),
		// Sorted on the kernel's commas, then decoded: a comma of a
		// value's own is escaped too ("\054", seq_show_option).
		Options: u(sortOptions(f[5])), Super: u(sortOptions(t[2])),
		Propagation: propagation(f[6:]),
	}, nil
}

// unescapeMountinfo decodes a mountinfo field as the kernel encoded it:
// seq_escape (fs/seq_file.c, string_escape_mem with ESCAPE_OCTAL) writes
// each byte it escapes, " \t\n\\" in paths, the source and the type
// (fs/proc_namespace.c), and ",=" too in options, as a backslash and
// three octal digits. Any other backslash stays as it is.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s // the common case: no allocation
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) && s[i+1] <= '3' {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// cutLine keeps an error about a line readable: a mount point can be
// thousands of bytes.
func cutLine(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
