package cgroups

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"

	"stepbox/primitives/step"
)

// The controllers `cgroup limit` knows, in the order help lists them.
const (
	Memory = "memory"
	Pids   = "pids"
	CPU    = "cpu"
)

// LimitKinds are the controllers `cgroup limit` translates for.
var LimitKinds = []string{Memory, Pids, CPU}

// Unlimited is how snapshots say "max": no limit set.
const Unlimited int64 = -1

const (
	// cpuPeriod is the CFS period stepbox sets: 100ms, the kernel's default.
	cpuPeriod = 100000
	// minMemory keeps the box's own processes off the OOM killer's list:
	// its box process and PID 1 are Go programs of about 8 MB resident,
	// and below about twice that a command that fills the limit is the
	// smaller target, so the killer would end the box instead.
	minMemory = 16 << 20
	// maxPids is PID_MAX_LIMIT on 64-bit kernels, the most pids.max takes.
	maxPids = 4 * 1024 * 1024
)

// ErrBadLimit is what every refused `cgroup limit` value is (errors.Is).
var ErrBadLimit = errors.New("bad limit")

// badLimit is a refused value: its message says what is allowed, and it
// is ErrBadLimit without saying so a second time.
type badLimit string

func (e badLimit) Error() string        { return string(e) }
func (e badLimit) Is(target error) bool { return target == ErrBadLimit }

// Setting is one control file write: which file, which value.
type Setting struct {
	File  string `json:"file"`  // absolute path of the control file
	Value string `json:"value"` // the value as the kernel reads it
}

// limitValue is a parsed `cgroup limit` value, before translation into a
// version's files: bytes for memory, tasks for pids, percent of one CPU
// for cpu; Unlimited for "max".
type limitValue struct {
	kind string
	n    int64
}

// parseLimit checks value for kind and says what is allowed when it is not.
func parseLimit(kind, value string) (limitValue, error) {
	bad := func(why string) (limitValue, error) {
		return limitValue{}, badLimit(fmt.Sprintf("cgroup limit %s %s: %s", kind, value, why))
	}
	if value == "max" {
		return limitValue{kind: kind, n: Unlimited}, nil
	}
	switch kind {
	case Memory:
		n, err := parseSize(value)
		if err != nil {
			return bad(err.Error() + "; use bytes or a size with K, M, G or T (64M, 1G), or max")
		}
		if n < minMemory {
			return bad("below 16M the OOM killer would pick the box's own init (stepbox's Go process, about 8 MB) before the command that fills the limit; use at least 16M, or max (`cgroup set` writes any value)")
		}
		return limitValue{kind: kind, n: n}, nil
	case Pids:
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return bad(fmt.Sprintf("not a number of tasks; use a whole number from 1 to %d, or max", maxPids))
		}
		if n < 1 || n > maxPids {
			return bad(fmt.Sprintf("out of range; use a whole number from 1 to %d, or max", maxPids))
		}
		return limitValue{kind: kind, n: n}, nil
	case CPU:
		most := 100 * runtime.NumCPU()
		allowed := fmt.Sprintf("1%% to %d%% (this host has %s), or max", most, step.Count(runtime.NumCPU(), "CPU"))
		num, ok := strings.CutSuffix(value, "%")
		n, wrong := cpuPercent(num, most)
		switch {
		case !ok && wrong == "":
			return bad(fmt.Sprintf("needs a percentage of one CPU, as in `cgroup limit cpu %s%%`; use %s", value, allowed))
		case !ok:
			// No "as in": the form with % would be refused too (ut34 F8).
			return bad(fmt.Sprintf("needs a percentage of one CPU, and %s; use %s", wrong, allowed))
		case wrong != "":
			return bad(fmt.Sprintf("%s; use a whole percentage from %s", wrong, allowed))
		}
		return limitValue{kind: kind, n: n}, nil
	}
	return limitValue{}, badLimit(fmt.Sprintf("cgroup limit %s: unknown controller; use %s", kind, strings.Join(LimitKinds, ", ")))
}

// cpuPercent reads num, the N of a cpu limit N%, or says what is wrong
// with it: from 1 to most, in whole percents. The form without % is
// checked by it too, so that the command it suggests is one taken.
func cpuPercent(num string, most int) (n int64, wrong string) {
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		// A fraction is a number all the same: say which rule it breaks.
		if f, ferr := strconv.ParseFloat(num, 64); ferr == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && f != math.Trunc(f) {
			return 0, fmt.Sprintf("%s%% is not a whole percentage", num)
		}
		return 0, fmt.Sprintf("%q is not a whole number", num)
	}
	switch {
	case n < 1:
		return 0, fmt.Sprintf("%s%% would be no CPU time at all", num)
	case n > int64(most):
		return 0, fmt.Sprintf("%s%% is more than this host's CPUs give", num)
	}
	return n, ""
}

// parseSize reads 123, 64K, 64M, 1G or 2T (powers of 1024, as the kernel's
// memparse reads them).
func parseSize(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty size")
	}
	shift := 0
	num := s
	switch strings.ToUpper(s[len(s)-1:]) {
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	case "T":
		shift = 40
	}
	if shift > 0 {
		num = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n << shift, nil
}

// cpuQuota is the CFS quota in microseconds for pct percent of one CPU.
func cpuQuota(pct int64) int64 { return pct * cpuPeriod / 100 }
