// Package step records what a stepbox primitive did to the kernel: each
// syscall in strace form with its result, the equivalent command with
// standard tools, the man pages and how the step is undone. `explain`
// prints these records; nothing re-derives them.
package step

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Call is one system call as strace would print it.
type Call struct {
	Syscall string `json:"syscall"` // e.g. unshare(CLONE_NEWUTS)
	Result  string `json:"result"`  // e.g. "0" or "-1 EINVAL (Invalid argument)"
}

// String is the call as strace prints it, its result at the end of the
// call itself, before a comment: clone(…) = 4242   # the new PID 1.
func (c Call) String() string {
	call, comment := c.Split()
	if comment == "" {
		return call + " = " + c.Result
	}
	return call + " = " + c.Result + CommentSep + comment
}

// CommentSep sets a comment off a call or a shell line: "   # ".
const CommentSep = "   # "

// Split separates the call from the comment a plan wrote after it.
func (c Call) Split() (call, comment string) {
	call, comment, _ = strings.Cut(c.Syscall, CommentSep)
	return call, comment
}

// Step is the record of one stepbox command applied to the kernel.
type Step struct {
	Command string   `json:"command"`         // the stepbox command, e.g. "unshare uts"
	Summary string   `json:"summary"`         // what happened, in plain words
	Calls   []Call   `json:"calls,omitempty"` // the syscalls, in order
	Shell   []string `json:"shell,omitempty"` // the same step with standard tools
	Man     []string `json:"man,omitempty"`   // man pages, e.g. "unshare(2)"
	Undo    string   `json:"undo,omitempty"`  // how the step is undone
	Notes   []string `json:"notes,omitempty"` // anything else worth knowing (output, warnings)

	// did and will are what the step did and will do, for its record
	// (Ran) and its plan (MarkNotRun).
	did, will string
}

// Tell sets the summary: did, in the past tense, for the record of a
// step that ran; will, in the future tense, for its plan when the same
// code builds both (the plan is the record with MarkNotRun).
func (s *Step) Tell(did, will string) {
	if s != nil {
		s.Summary, s.did, s.will = did, did, will
	}
}

// Do runs fn, the syscall described by call, records it in s and returns
// its error wrapped as a *SyscallError. s may be nil.
func (s *Step) Do(call string, fn func() error) error {
	err := fn()
	s.Record(call, err)
	if err != nil {
		return &SyscallError{Call: call, Err: err}
	}
	return nil
}

// Record appends call with the result err (nil meaning success) to s.
func (s *Step) Record(call string, err error) {
	if s == nil {
		return
	}
	s.Calls = append(s.Calls, Call{Syscall: call, Result: Result(err)})
}

// Succeeded counts the calls of syscall name (e.g. "rmdir") that
// returned 0.
func (s *Step) Succeeded(name string) int {
	if s == nil {
		return 0
	}
	n := 0
	for _, c := range s.Calls {
		if strings.HasPrefix(c.Syscall, name+"(") && c.Result == "0" {
			n++
		}
	}
	return n
}

// Merge appends the calls, shell commands, man pages and notes of o to s.
func (s *Step) Merge(o *Step) {
	if s == nil || o == nil {
		return
	}
	s.Calls = append(s.Calls, o.Calls...)
	s.Shell = append(s.Shell, o.Shell...)
	for _, m := range o.Man {
		if !contains(s.Man, m) {
			s.Man = append(s.Man, m)
		}
	}
	s.Notes = append(s.Notes, o.Notes...)
	if s.Undo == "" {
		s.Undo = o.Undo
	} else if o.Undo != "" && o.Undo != s.Undo {
		s.Undo += "; " + o.Undo
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Result formats err the way strace prints a syscall's result.
func Result(err error) string {
	if err == nil {
		return "0"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return fmt.Sprintf("-1 %s (%s)", unix.ErrnoName(errno), upperFirst(errno.Error()))
	}
	return "-1 (" + err.Error() + ")"
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// SyscallError is a failed syscall: which call, on what, and the kernel's errno.
type SyscallError struct {
	Call string // strace form, e.g. pivot_root(".", ".")
	Err  error  // usually a unix.Errno
}

func (e *SyscallError) Error() string {
	var errno unix.Errno
	if errors.As(e.Err, &errno) {
		return fmt.Sprintf("%s: %s (%s)", e.Call, unix.ErrnoName(errno), errno.Error())
	}
	return e.Call + ": " + e.Err.Error()
}

func (e *SyscallError) Unwrap() error { return e.Err }

// Errno returns the errno inside err, or 0.
func Errno(err error) unix.Errno {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return 0
}

// CallLines returns each call as strace prints it.
func (s *Step) CallLines() []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s.Calls))
	for i, c := range s.Calls {
		out[i] = c.String()
	}
	return out
}
