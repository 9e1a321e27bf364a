package cgroups

import (
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func TestParseLimitTranslatesUnits(t *testing.T) {
	for _, c := range []struct {
		kind, value string
		want        int64
	}{
		{Memory, "64M", 64 << 20},
		{Memory, "1G", 1 << 30},
		{Memory, "2g", 2 << 30},
		{Memory, "16777216", 16 << 20},
		{Memory, "max", Unlimited},
		{Pids, "20", 20},
		{Pids, "max", Unlimited},
		{CPU, "50%", 50},
		{CPU, "max", Unlimited},
	} {
		v, err := parseLimit(c.kind, c.value)
		if err != nil || v.n != c.want {
			t.Errorf("parseLimit(%s, %s) = %d, %v; want %d", c.kind, c.value, v.n, err, c.want)
		}
	}
	if got := cpuQuota(50); got != 50000 {
		t.Errorf("cpuQuota(50) = %d, want 50000 of a 100000us period", got)
	}
}

func TestParseLimitSaysWhatIsAllowed(t *testing.T) {
	most := strconv.Itoa(100*runtime.NumCPU()) + "%"
	for _, c := range []struct{ kind, value, want string }{
		{Memory, "64MB", "use bytes or a size with K, M, G or T"},
		{Memory, "50%", "use bytes or a size"},
		{Memory, "512K", "at least 16M"},
		{Memory, "8M", "at least 16M"},
		{Memory, "-1", "not a size"},
		{Memory, "99999999999T", "too large"},
		{Pids, "0", "from 1 to 4194304"},
		{Pids, "20M", "whole number"},
		{Pids, "5000000", "from 1 to 4194304"},
		{CPU, "50", "percentage of one CPU"},
		{CPU, "0%", "1% to " + most},
		{CPU, strconv.Itoa(100*runtime.NumCPU()+1) + "%", "1% to " + most},
		{"io", "10M", "unknown controller; use memory, pids, cpu"},
	} {
		_, err := parseLimit(c.kind, c.value)
		if !errors.Is(err, ErrBadLimit) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "cgroup limit "+c.kind) {
			t.Errorf("parseLimit(%s, %s): err = %v, want ErrBadLimit naming the command and %q", c.kind, c.value, err, c.want)
		}
	}
}

// `cgroup limit cpu X` without % suggests `cgroup limit cpu X%` only
// where that is taken, and otherwise says what is wrong with X: "0",
// "1000", "NaN" and "1/0" each suggested a command it then refused
// (ut34 F8). The % form says what is wrong the same way.
func TestCPULimitSuggestsOnlyWhatItTakes(t *testing.T) {
	most := 100 * runtime.NumCPU()
	over := strconv.Itoa(most + 1)
	allowed := "1% to " + strconv.Itoa(most) + "% (this host has " + strconv.Itoa(runtime.NumCPU()) + " CPU"
	if runtime.NumCPU() != 1 {
		allowed += "s"
	}
	allowed += "), or max"
	needs := "needs a percentage of one CPU, "
	for _, c := range []struct{ value, want string }{
		{"50", needs + "as in `cgroup limit cpu 50%`; use " + allowed},
		{"1", needs + "as in `cgroup limit cpu 1%`; use " + allowed},
		{strconv.Itoa(most), needs + "as in `cgroup limit cpu " + strconv.Itoa(most) + "%`; use " + allowed},
		{"0", needs + "and 0% would be no CPU time at all; use " + allowed},
		{"-5", needs + "and -5% would be no CPU time at all; use " + allowed},
		{over, needs + "and " + over + "% is more than this host's CPUs give; use " + allowed},
		{"99999999999999999999", needs + "and 99999999999999999999% is more than this host's CPUs give; use " + allowed},
		{"NaN", needs + `and "NaN" is not a whole number; use ` + allowed},
		{"Inf", needs + `and "Inf" is not a whole number; use ` + allowed},
		{"1/0", needs + `and "1/0" is not a whole number; use ` + allowed},
		{"0.5", needs + "and 0.5% is not a whole percentage; use " + allowed},
		{"0%", "0% would be no CPU time at all; use a whole percentage from " + allowed},
		{over + "%", over + "% is more than this host's CPUs give; use a whole percentage from " + allowed},
		{"0.5%", "0.5% is not a whole percentage; use a whole percentage from " + allowed},
		{"NaN%", `"NaN" is not a whole number; use a whole percentage from ` + allowed},
		{"%", `"" is not a whole number; use a whole percentage from ` + allowed},
	} {
		_, err := parseLimit(CPU, c.value)
		if want := "cgroup limit cpu " + c.value + ": " + c.want; err == nil || err.Error() != want {
			t.Errorf("cgroup limit cpu %s:\n got %v\nwant %s", c.value, err, want)
		}
		if err == nil || strings.HasSuffix(c.value, "%") {
			continue
		}
		// What it suggests is taken, and where it suggests nothing, the
		// form with % is refused too.
		_, withPercent := parseLimit(CPU, c.value+"%")
		if suggests := strings.Contains(err.Error(), "as in `cgroup limit cpu "+c.value+"%`"); suggests != (withPercent == nil) {
			t.Errorf("cgroup limit cpu %s suggests %s%%: %v; with %% it is refused: %v", c.value, c.value, suggests, withPercent)
		}
	}
}
